import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import * as root from '../../index.js';
import { suiteTempTree } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

interface PackageJson {
  name: string;
  main: string;
  types: string;
  exports: { '.': { types: string; default: string } };
}

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;

describe('plugin API: the package entry point', () => {
  it('"fluidmcp" resolves, through package.json "exports", to the root entry point', async () => {
    const name = pkg.name; // not a literal: tsc would resolve it to the declarations, which need a build first
    const byName = (await import(name)) as typeof root;
    expect(byName.createKernel).to.equal(root.createKernel);
    expect(byName.errors).to.equal(root.errors);
    expect(pkg.exports['.'].default).to.equal('./dist/index.js');
  });

  it('offers what a plugin author needs: kernel, definePlugin, hooks, tokens, contracts\' values and the error table', () => {
    expect(root.createKernel).to.be.a('function');
    expect(root.definePlugin).to.be.a('function');
    expect(root.applicationHookNames).to.deep.equal(['onStart', 'onReady', 'preClose', 'onClose']);
    expect(root.requestHookNames).to.deep.equal(['onRequest', 'preHandler', 'onResponse', 'onError']);
    const tokens = { KERNEL: 'kernel', LOGGER: 'logger', ROUTER: 'router', SERVERS: 'servers', TRANSPORTS: 'transports', AUTH_STRATEGIES: 'auth-strategies', EVENT_STREAMS: 'event-streams', CHANNELS: 'channels', PENDING_STATE: 'pending-state' };
    for (const [exported, id] of Object.entries(tokens)) {
      const token = (root as unknown as Record<string, root.Token<unknown>>)[exported]!;
      expect(token.id, exported).to.equal(id);
      expect(typeof token.symbol, exported).to.equal('symbol');
    }
    expect(root.ANONYMOUS).to.deep.equal({ key: 'shared', env: {} });
    for (const code of ['FMCP_ERR_STRATEGY_DUPLICATE', 'FMCP_ERR_STRATEGY_MISSING', 'FMCP_ERR_PLUGIN_LOAD', 'FMCP_ERR_PLUGIN_DEPENDENCY', 'FMCP_ERR_UNAUTHORIZED', 'FMCP_ERR_CONFIG_INVALID'] as const) {
      expect(root.errors[code].code).to.equal(code);
      expect(root.errors[code]()).to.be.instanceOf(root.FluidError);
    }
    expect(root.serverFieldError).to.be.a('function');
    expect(root.builtinPlugins().map((p) => p.name)).to.deep.equal(['transport-stdio', 'transport-http', 'proxy-jsonrpc', 'transport-sse', 'auth-oauth2-pkce']);
  });

  it('ships type declarations where package.json says', () => {
    expect(pkg.types).to.equal('dist/index.d.ts');
    expect(pkg.exports['.'].types).to.equal('./dist/index.d.ts');
    expect(existsSync(join(repoRoot, 'dist', 'index.d.ts'))).to.equal(true);
    expect(existsSync(join(repoRoot, 'dist', 'core', 'contracts.d.ts'))).to.equal(true);
  });

  describe('a third-party plugin in TypeScript, type-checked against "fluidmcp"', function () {
    // one TypeScript program over the shipped declarations: a couple of seconds
    this.timeout(30_000);
    const tree = suiteTempTree({
      'package.json': { name: 'fmcp-plugin-magic', type: 'module' },
      'good.ts': [
        "import { AUTH_STRATEGIES, definePlugin, errors, type AuthStrategy, type Identity, type Plugin } from 'fluidmcp';",
        'const strategy: AuthStrategy = {',
        "  key: 'magic',",
        '  authenticate(ctx, server): Identity {',
        "    if (!ctx.req.headers['x-magic']) throw errors.FMCP_ERR_UNAUTHORIZED(`no magic for ${server.name}`);",
        "    return { key: 'magic', env: { MAGIC: 'yes' } };",
        '  },',
        '};',
        'export default (): Plugin => definePlugin({',
        "  name: 'magic',",
        '  register(api) {',
        "    api.authStrategies.register('magic', strategy);",
        "    api.addHook('onStart', () => { api.log.info({ strategies: api.resolve(AUTH_STRATEGIES).keys() }, 'ready'); });",
        '  },',
        '});',
        '',
      ].join('\n'),
      'bad.ts': [
        "import { definePlugin, type AuthStrategy } from 'fluidmcp';",
        "const strategy: AuthStrategy = { key: 'magic', authenticate: () => ({ key: 1, env: {} }) };",
        "export default () => definePlugin({ name: 'magic', register(api) { api.authStrategies.register('magic', strategy); api.addHook('onStrat', () => undefined); } });",
        '',
      ].join('\n'),
    });
    let diagnostics: Map<string, string[]>;

    before(() => {
      mkdirSync(join(tree.root, 'node_modules'));
      symlinkSync(repoRoot, join(tree.root, 'node_modules', 'fluidmcp'));
      const files = ['good.ts', 'bad.ts'].map((f) => join(tree.root, f));
      const program = ts.createProgram(files, {
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(repoRoot, 'node_modules', '@types')],
      });
      diagnostics = new Map(files.map((f) => [f.slice(tree.root.length + 1), [] as string[]]));
      for (const d of ts.getPreEmitDiagnostics(program)) {
        const file = d.file ? d.file.fileName.slice(tree.root.length + 1) : '(global)';
        const list = diagnostics.get(file) ?? [];
        list.push(ts.flattenDiagnosticMessageText(d.messageText, ' '));
        diagnostics.set(file, list);
      }
    });

    it('compiles a correct plugin with no error', () => {
      expect(diagnostics.get('good.ts')).to.deep.equal([]);
      expect(diagnostics.get('(global)') ?? []).to.deep.equal([]);
    });

    it('catches a wrong identity and a misspelt hook: the declarations are typed, not `any`', () => {
      expect(diagnostics.get('bad.ts')).to.deep.equal([
        "Type 'number' is not assignable to type 'string'.",
        'Argument of type \'"onStrat"\' is not assignable to parameter of type \'HookName\'.',
      ]);
    });
  });
});
