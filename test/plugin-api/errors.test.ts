import { expect } from 'chai';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { authOAuth2Pkce, definePlugin, errors, proxyJsonRpc, transportStdio, type AuthStrategy, type Plugin, type TransportFactory } from '../../index.js';
import { apiKeyAuth } from '../../examples/plugins/api-key/index.js';
import { errorLines, RunningCli, runCli, suiteTempTree, type CliResult } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/paths.js';

const rootEntry = pathToFileURL(join(repoRoot, 'dist', 'index.js')).href;
const envServer = join(repoRoot, 'test', 'examples', 'plugins', 'env-server.mjs');

const fakeStrategy = (key: string): AuthStrategy => ({ key, authenticate: () => ({ key: 'x', env: {} }) });
const strategyPlugin = (name: string, key: string): Plugin => definePlugin({ name, register: (api) => api.authStrategies.register(key, fakeStrategy(key)) });

async function startError(plugins: Plugin[]): Promise<Error> {
  let gw: TestGateway | undefined;
  try {
    gw = await startGateway({}, { plugins });
  } catch (err) {
    return err as Error;
  } finally {
    await gw?.stop();
  }
  throw new Error('expected start() to fail');
}

/** The one line a failed `fluidmcp run` printed, without the "fluidmcp: " prefix. */
function oneLine(result: CliResult): string {
  const lines = errorLines(result.stderr);
  expect(lines, result.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^fluidmcp: /);
  return lines[0]!.slice('fluidmcp: '.length);
}

describe('plugin API: coded errors a plugin author meets', () => {
  describe('duplicate strategy', () => {
    it('two auth strategies under one key: FMCP_ERR_STRATEGY_DUPLICATE names both plugins, in registration order', async () => {
      const first = await startError([authOAuth2Pkce(), strategyPlugin('second-pkce', 'oauth2/pkce')]);
      expect(errors.FMCP_ERR_STRATEGY_DUPLICATE.is(first)).to.equal(true);
      expect(first.message).to.equal('Auth strategy "oauth2/pkce" is registered twice: by plugin "auth-oauth2-pkce" and by plugin "second-pkce"');
      const reversed = await startError([strategyPlugin('second-pkce', 'oauth2/pkce'), authOAuth2Pkce()]);
      expect(reversed.message).to.equal('Auth strategy "oauth2/pkce" is registered twice: by plugin "second-pkce" and by plugin "auth-oauth2-pkce"');
    });

    it('an example plugin\'s key taken by another plugin', async () => {
      const err = await startError([apiKeyAuth(), strategyPlugin('other-api-key', 'api_key')]);
      expect(err.message).to.equal('Auth strategy "api_key" is registered twice: by plugin "api-key" and by plugin "other-api-key"');
    });

    it('two transports of one kind', async () => {
      const factory: TransportFactory = { kind: 'stdio', claims: () => false, create: () => { throw new Error('unused'); } };
      const err = await startError([transportStdio(), definePlugin({ name: 'my-stdio', register: (api) => api.transports.register('stdio', factory) })]);
      expect(errors.FMCP_ERR_STRATEGY_DUPLICATE.is(err)).to.equal(true);
      expect(err.message).to.equal('Transport "stdio" is registered twice: by plugin "transport-stdio" and by plugin "my-stdio"');
    });
  });

  describe('plugin dependency missing', () => {
    const needsPkce = (): Plugin => definePlugin({ name: 'pkce-audit', dependencies: ['auth-oauth2-pkce'], register: () => undefined });

    it('FMCP_ERR_PLUGIN_DEPENDENCY names the plugin and what it needs, and how to add it', async () => {
      const err = await startError([proxyJsonRpc(), needsPkce()]);
      expect(errors.FMCP_ERR_PLUGIN_DEPENDENCY.is(err)).to.equal(true);
      expect(err.message).to.equal('Plugin "pkce-audit" depends on "auth-oauth2-pkce", which is not registered: add it with kernel.use() or --plugin');
    });

    it('with the dependency present, in any use() order, it registers after it', async () => {
      const order: string[] = [];
      const recorder = (plugin: Plugin): Plugin => ({ ...plugin, register: (api) => (order.push(plugin.name), plugin.register(api)) });
      const gw = await startGateway({}, { plugins: [recorder(needsPkce()), recorder(authOAuth2Pkce())] });
      await gw.stop();
      expect(order).to.deep.equal(['auth-oauth2-pkce', 'pkce-audit']);
    });
  });

  describe('through `fluidmcp run`: one clear line naming the plugin', function () {
    const tree = suiteTempTree({
      'config.json': { mcpServers: { env: { command: process.execPath, args: [envServer] } } },
      'broken-import.mjs': "import 'fmcp-no-such-package-anywhere';\nexport default { name: 'broken-import', register() {} };\n",
      'register-throws.mjs': "export default { name: 'exploding', register() { throw new Error('the AUDIT_URL variable is empty'); } };\n",
      'needs-audit.mjs': "export default { name: 'needs-audit', dependencies: ['audit-log'], register() {} };\n",
      'second-pkce.mjs': "export default { name: 'second-pkce', register(api) { api.authStrategies.register('oauth2/pkce', { key: 'oauth2/pkce', authenticate: () => ({ key: 'x', env: {} }) }); } };\n",
      // a third-party plugin that needs a built-in one, reaches it through a token, and serves a route
      'needs-proxy.mjs': [
        `import { CHANNELS, definePlugin, sendJson } from '${rootEntry}';`,
        'export default () => definePlugin({',
        "  name: 'needs-proxy',",
        "  dependencies: ['proxy-jsonrpc'],",
        '  register(api) {',
        "    api.route({ method: 'GET', path: '/plugin-check', handler: (ctx) => sendJson(ctx.res, 200, { channels: api.tryResolve(CHANNELS) !== undefined }) });",
        '  },',
        '});',
        '',
      ].join('\n'),
    });
    const run = (plugin: string): Promise<CliResult> => runCli(['run', '--file', 'config.json', '--start-server', '--port', '0', '--plugin', plugin], { cwd: tree.root });

    it('a plugin that fails to load: exit 2', async () => {
      const result = await run('./broken-import.mjs');
      expect(result.code).to.equal(2);
      expect(oneLine(result)).to.match(/^Cannot load plugin "\.\/broken-import\.mjs": Cannot find package 'fmcp-no-such-package-anywhere'/);
    });

    it('a plugin whose register() throws: exit 1', async () => {
      const result = await run('./register-throws.mjs');
      expect(result.code).to.equal(1);
      expect(oneLine(result)).to.equal('Plugin "exploding" failed in register: the AUDIT_URL variable is empty');
    });

    it('a plugin whose dependency is not loaded: exit 2', async () => {
      const result = await run('./needs-audit.mjs');
      expect(result.code).to.equal(2);
      expect(oneLine(result)).to.equal('Plugin "needs-audit" depends on "audit-log", which is not registered: add it with kernel.use() or --plugin');
    });

    it('a plugin that takes a built-in strategy\'s key: exit 2', async () => {
      const result = await run('./second-pkce.mjs');
      expect(result.code).to.equal(2);
      expect(oneLine(result)).to.equal('Auth strategy "oauth2/pkce" is registered twice: by plugin "second-pkce" and by plugin "auth-oauth2-pkce"');
    });

    it('a plugin that depends on a built-in one starts after it and reaches it through its token', async () => {
      const cli = new RunningCli(['run', '--file', 'config.json', '--start-server', '--port', '0', '--plugin', './needs-proxy.mjs'], { cwd: tree.root });
      try {
        const base = await cli.ready();
        expect(await (await fetch(`${base}/plugin-check`)).json()).to.deep.equal({ channels: true });
      } finally {
        expect((await cli.stop()).code).to.equal(0);
      }
    });
  });
});
