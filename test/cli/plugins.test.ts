import { expect } from 'chai';
import { loadPlugin } from '../../cli/plugins.js';
import { errors } from '../../core/index.js';
import { suiteTempTree } from '../helpers/cli.js';

describe('cli/plugins', () => {
  const tree = suiteTempTree({
    'default-object.mjs': 'export default { name: "default-object", register() {} };\n',
    'default-factory.mjs': 'export default function make(options = { suffix: "x" }) { return { name: "factory-" + options.suffix, register() {} }; }\n',
    'async-factory.mjs': 'export default async () => ({ name: "async-made", register() {} });\n',
    'named.mjs': 'export const plugin = { name: "named-export", register() {} };\n',
    'both.mjs': 'export default { name: "the-default", register() {} };\nexport const plugin = { name: "the-named", register() {} };\n',
    'commonjs.cjs': 'module.exports = { name: "from-commonjs", register() {} };\n',
    'factory-throws.mjs': 'export default () => { throw new Error("missing API_KEY"); };\n',
    'syntax.mjs': 'export default {\n',
    'node_modules/fluidmcp-plugin-demo/package.json': JSON.stringify({ name: 'fluidmcp-plugin-demo', type: 'module', exports: { '.': { import: './index.js' } } }),
    'node_modules/fluidmcp-plugin-demo/index.js': 'export const plugin = () => ({ name: "demo-from-node-modules", register() {} });\n',
    'node_modules/@acme/fmcp-auth/package.json': JSON.stringify({ name: '@acme/fmcp-auth', main: 'lib/main.cjs' }),
    'node_modules/@acme/fmcp-auth/lib/main.cjs': 'exports.plugin = { name: "acme-auth", register() {} };\n',
    'node_modules/@acme/fmcp-auth/extra.mjs': 'export default { name: "acme-extra", register() {} };\n',
    'node_modules/sugar-exports/package.json': JSON.stringify({ name: 'sugar-exports', exports: './entry.mjs' }),
    'node_modules/sugar-exports/entry.mjs': 'export default { name: "sugar", register() {} };\n',
  });

  const load = (spec: string) => loadPlugin(spec, tree.root);
  const failure = (spec: string) => load(spec).then(() => { throw new Error('expected a failure'); }, (err: Error) => err);

  it('takes a default export that is a plugin', async () => {
    expect((await load('./default-object.mjs')).name).to.equal('default-object');
  });

  it('calls a default export that is a factory, sync or async', async () => {
    expect((await load('./default-factory.mjs')).name).to.equal('factory-x');
    expect((await load('async-factory.mjs')).name).to.equal('async-made');
  });

  it('takes a named "plugin" export, preferring the default export when both exist', async () => {
    expect((await load('./named.mjs')).name).to.equal('named-export');
    expect((await load('./both.mjs')).name).to.equal('the-default');
  });

  it('loads a CommonJS module and an absolute path', async () => {
    expect((await load(`${tree.root}/commonjs.cjs`)).name).to.equal('from-commonjs');
  });

  it('finds a module name from the given folder, even an ESM-only package', async () => {
    expect((await load('fluidmcp-plugin-demo')).name).to.equal('demo-from-node-modules');
  });

  it('finds scoped packages, their subpaths, and string exports', async () => {
    expect((await load('@acme/fmcp-auth')).name).to.equal('acme-auth');
    expect((await load('@acme/fmcp-auth/extra.mjs')).name).to.equal('acme-extra');
    expect((await load('sugar-exports')).name).to.equal('sugar');
  });

  it('names the module in every failure', async () => {
    const cases: [string, RegExp][] = [
      ['./absent.mjs', /^Cannot load plugin "\.\/absent\.mjs": no such file .*absent\.mjs$/],
      ['./factory-throws.mjs', /^Cannot load plugin "\.\/factory-throws\.mjs": missing API_KEY$/],
      ['./syntax.mjs', /^Cannot load plugin "\.\/syntax\.mjs": /],
      ['not-installed-anywhere', /^Cannot load plugin "not-installed-anywhere": no module of that name is installed \(looked from .*\)/],
      ['plugins/absent.js', /^Cannot load plugin "plugins\/absent\.js": no such file .*\/plugins\/absent\.js, and no module of that name is installed/],
    ];
    for (const [spec, message] of cases) {
      const err = await failure(spec);
      expect(errors.FMCP_ERR_PLUGIN_LOAD.is(err), spec).to.equal(true);
      expect(err.message).to.match(message);
    }
  });
});
