import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../helpers/paths.js';

/*
 * ARCHITECTURE.md, "The dependency rule": `core/` imports no plugin; a plugin imports only `core/index.ts`
 * and never another plugin. Read from the import graph of the source files (static imports, `export …
 * from`, `import()` and `typeof import()`), as TypeScript itself lists them.
 */

interface SourceFile {
  /** relative to the repository root, with forward slashes */
  path: string;
  text: string;
}

function sources(dir: string): SourceFile[] {
  const found: SourceFile[] = [];
  for (const name of readdirSync(join(repoRoot, dir))) {
    const path = `${dir}/${name}`;
    if (statSync(join(repoRoot, path)).isDirectory()) found.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) found.push({ path, text: readFileSync(join(repoRoot, path), 'utf8') });
  }
  return found;
}

/** The specifiers a file imports, in order. */
function importsOf(file: SourceFile): string[] {
  const info = ts.preProcessFile(file.text, true, true);
  const specs = info.importedFiles.map((f) => f.fileName);
  // `typeof import('x')` in a type position is not in importedFiles
  for (const m of file.text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) if (!specs.includes(m[1]!)) specs.push(m[1]!);
  return specs;
}

/** Every break of the rule, one line each: `<file> imports <specifier> (<target>): <rule>`. */
export function dependencyViolations(files: readonly SourceFile[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    const [top, plugin] = file.path.split('/');
    for (const spec of importsOf(file)) {
      if (spec === 'fluidmcp') {
        if (top === 'core' || top === 'plugins') found.push(`${file.path} imports ${spec}: the package entry holds every plugin; import core/index.ts`);
        continue;
      }
      if (!spec.startsWith('.')) continue; // node: built-ins and npm packages
      const target = relative(repoRoot, resolve(repoRoot, dirname(file.path), spec)).replace(/\\/g, '/').replace(/\.js$/, '.ts');
      if (top === 'core' && !target.startsWith('core/')) found.push(`${file.path} imports ${spec} (${target}): core/ imports no plugin and nothing outside core/`);
      if (top === 'plugins' && !target.startsWith(`plugins/${plugin}/`) && target !== 'core/index.ts') {
        found.push(`${file.path} imports ${spec} (${target}): a plugin imports only core/index.ts and its own files`);
      }
    }
  }
  return found;
}

describe('the dependency rule of ARCHITECTURE.md', () => {
  it('holds for every source file of core/ and plugins/', () => {
    const files = [...sources('core'), ...sources('plugins')];
    expect(files.filter((f) => f.path.startsWith('core/')).length).to.be.greaterThan(10);
    expect(new Set(files.filter((f) => f.path.startsWith('plugins/')).map((f) => f.path.split('/')[1])).size).to.be.greaterThan(5);
    expect(dependencyViolations(files)).to.deep.equal([]);
  });

  it('names each kind of break, so the check above can fail', () => {
    const files: SourceFile[] = [
      { path: 'core/kernel.ts', text: "import { x } from '../plugins/proxy-jsonrpc/index.js';\nexport { y } from './router.js';\n" },
      { path: 'core/late.ts', text: "const m = await import('../plugins/state-redis/index.js');\ntype T = typeof import('../cli/run.js');\n" },
      { path: 'plugins/transport-sse/index.ts', text: "import { a } from '../../core/index.js';\nimport { b } from '../../core/kernel.js';\nimport { c } from '../proxy-jsonrpc/channels.js';\nimport { d } from './writer.js';\nimport { e } from 'fluidmcp';\n" },
    ];
    expect(dependencyViolations(files)).to.deep.equal([
      'core/kernel.ts imports ../plugins/proxy-jsonrpc/index.js (plugins/proxy-jsonrpc/index.ts): core/ imports no plugin and nothing outside core/',
      'core/late.ts imports ../plugins/state-redis/index.js (plugins/state-redis/index.ts): core/ imports no plugin and nothing outside core/',
      'core/late.ts imports ../cli/run.js (cli/run.ts): core/ imports no plugin and nothing outside core/',
      'plugins/transport-sse/index.ts imports ../../core/kernel.js (core/kernel.ts): a plugin imports only core/index.ts and its own files',
      'plugins/transport-sse/index.ts imports ../proxy-jsonrpc/channels.js (plugins/proxy-jsonrpc/channels.ts): a plugin imports only core/index.ts and its own files',
      'plugins/transport-sse/index.ts imports fluidmcp: the package entry holds every plugin; import core/index.ts',
    ]);
  });
});
