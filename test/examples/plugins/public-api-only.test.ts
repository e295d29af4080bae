import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

const PLUGINS = ['api-key', 'oauth2-client-credentials'];
const pluginDir = (name: string): string => join(repoRoot, 'examples', 'plugins', name);
const tsFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const pattern of [/\bfrom\s+'([^']+)'/g, /\bimport\s+'([^']+)'/g, /\bimport\(\s*'([^']+)'\s*\)/g, /\brequire\(\s*'([^']+)'\s*\)/g]) {
    for (const match of text.matchAll(pattern)) found.push(match[1]!);
  }
  return found;
}

describe('examples/plugins need nothing but the public API', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

  it('no file under core/ mentions either plugin or what it handles', () => {
    const coreFiles = tsFiles(join(repoRoot, 'core'));
    expect(coreFiles.length).to.be.greaterThan(5);
    for (const file of coreFiles) {
      const text = readFileSync(file, 'utf8').toLowerCase();
      for (const word of ['api_key', 'api-key', 'apikey', 'x-api-key', 'client_credentials', 'client-credentials', 'examples/']) {
        expect(text.includes(word), `${file} mentions "${word}"`).to.equal(false);
      }
    }
  });

  it('neither the package entry nor the CLI builds them in: they arrive only as plugins', () => {
    for (const file of [join(repoRoot, 'index.ts'), ...tsFiles(join(repoRoot, 'cli'))]) {
      expect(specifiers(file).filter((s) => s.includes('examples')), file).to.deep.equal([]);
    }
  });

  for (const name of PLUGINS) {
    it(`${name} imports only the package root entry point, its own files, node: builtins and npm packages`, () => {
      const files = tsFiles(pluginDir(name));
      let usesRoot = false;
      for (const file of files) {
        for (const spec of specifiers(file)) {
          const where = `${file} imports "${spec}"`;
          if (spec === '../../../index.js') {
            usesRoot = true;
          } else if (spec.startsWith('./')) {
            expect(spec.slice(2), where).to.not.include('/');
            expect(existsSync(join(pluginDir(name), spec.replace(/\.js$/, '.ts'))), where).to.equal(true);
          } else if (spec.startsWith('node:')) {
            expect(builtinModules, where).to.include(spec.slice(5));
          } else {
            expect(spec, where).to.not.match(/^[./]/);
            expect(Object.keys(pkg.dependencies), where).to.include(spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/'));
          }
        }
      }
      expect(usesRoot, `${name} imports the root entry point`).to.equal(true);
    });

    it(`${name} exports a default plugin factory and a named "plugin"`, async () => {
      const mod = (await import(join(repoRoot, 'dist', 'examples', 'plugins', name, 'index.js'))) as { default: (o?: object) => { name: string }; plugin: { name: string; register: unknown } };
      expect(mod.default).to.be.a('function');
      expect(mod.default().name).to.equal(name);
      expect(mod.plugin.name).to.equal(name);
      expect(mod.plugin.register).to.be.a('function');
    });
  }
});
