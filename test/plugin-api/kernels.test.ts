import { expect } from 'chai';
import {
  authOAuth2Pkce,
  builtinPlugins,
  errors,
  proxyJsonRpc,
  transportSse,
  transportHttp,
  transportStdio,
  type Plugin,
  type ServerEntry,
} from '../../index.js';
import { apiKeyAuth } from '../../examples/plugins/api-key/index.js';
import { oauth2ClientCredentials } from '../../examples/plugins/oauth2-client-credentials/index.js';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../helpers/gateway.js';

const stdio = (): Plugin => transportStdio({ stopGraceMs: 300 });
const echo = (text: string) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: text } } });
const echoed = (res: { json: unknown }): string => (res.json as { result: { content: { text: string }[] } }).result.content[0]!.text;

const pkceBlock = {
  type: 'oauth2',
  flow: 'pkce',
  authorization_url: 'https://provider.example/authorize',
  token_url: 'https://provider.example/token',
  client_id_env: 'MAIL_CLIENT_ID',
  env_var_name: 'MAIL_TOKEN',
  validate: 'none',
};
const apiKeyBlock = { type: 'api_key', keys_env: 'CALC_KEYS' };
const ccBlock = { type: 'oauth2', flow: 'client_credentials', token_url: 'https://provider.example/token', client_id_env: 'R_ID', client_secret_env: 'R_SECRET', env_var_name: 'R_TOKEN' };
const env = { MAIL_CLIENT_ID: 'mail-client', CALC_KEYS: 'alice:alice-key-0123456789abcdef', R_ID: 'reports', R_SECRET: 'reports-secret' };

/** The kernel's start-up error; fails the test if it started. */
async function startError(servers: Record<string, ServerEntry>, plugins: Plugin[]): Promise<Error> {
  let gw: TestGateway | undefined;
  try {
    gw = await startGateway(servers, { plugins });
  } catch (err) {
    return err as Error;
  } finally {
    await gw?.stop();
  }
  throw new Error('expected start() to fail');
}

describe('plugin API: kernels built with and without each built-in plugin', () => {
  const started: TestGateway[] = [];
  const start = async (servers: Record<string, ServerEntry>, plugins: Plugin[]): Promise<TestGateway> => {
    const gw = await startGateway(servers, { plugins });
    started.push(gw);
    return gw;
  };
  after(() => Promise.all(started.map((gw) => gw.stop())));

  it('no plugins, no servers: the kernel alone answers /health and 404 JSON', async () => {
    const gw = await start({}, []);
    expect(await (await fetch(gw.url('/health'))).json()).to.deep.equal({ status: 'ok', servers: {} });
    const res = await fetch(gw.url('/anything/mcp'), { method: 'POST' });
    expect(res.status).to.equal(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('FMCP_ERR_NOT_FOUND');
  });

  describe('only proxy-jsonrpc and transport-stdio', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await start({ everything: everythingEntry() }, [proxyJsonRpc(), stdio()]);
    });

    it('serves a package without auth', async () => {
      const res = await postJson(gw.url('/everything/mcp'), echo('only two plugins'));
      expect(res.status, res.text).to.equal(200);
      expect(echoed(res)).to.equal('Echo: only two plugins');
      const health = (await (await fetch(gw.url('/health'))).json()) as { servers: Record<string, Record<string, unknown>> };
      expect(health.servers.everything).to.include({ transport: 'stdio', state: 'up' });
    });

    it('has no SSE (GET /mcp is 405, /sse is not a route) and no login routes', async () => {
      expect((await fetch(gw.url('/everything/mcp'), { headers: { accept: 'text/event-stream' } })).status).to.equal(405);
      expect((await fetch(gw.url('/everything/sse'))).status).to.equal(404);
      expect((await fetch(gw.url('/everything/auth/login'))).status).to.equal(404);
    });
  });

  it('without transport-stdio: transport-http reaches a remote server, here another kernel', async () => {
    const inner = await start({ everything: everythingEntry() }, [proxyJsonRpc(), stdio()]);
    const outer = await start({ remote: { url: inner.url('/everything/mcp') } }, [transportHttp(), proxyJsonRpc()]);
    const res = await postJson(outer.url('/remote/mcp'), echo('through two gateways'));
    expect(res.status, res.text).to.equal(200);
    expect(echoed(res)).to.equal('Echo: through two gateways');
    expect(outer.kernel.servers.get('remote')!.transport).to.equal('http');
  });

  it('without proxy-jsonrpc: transport-sse starts, and says the proxy is missing when called', async () => {
    const gw = await start({ everything: everythingEntry() }, [stdio(), transportSse()]);
    expect((await postJson(gw.url('/everything/mcp'), echo('x'))).status).to.equal(404);
    const res = await postJson(gw.url('/everything/sse'), echo('x'));
    expect(res.status).to.equal(503);
    expect((res.json as { error: { message: string } }).error.message).to.include('the gateway needs the proxy-jsonrpc plugin (kernel.use(proxyJsonRpc()))');
  });

  it('without any transport: a server is a start-up error naming what would serve it', async () => {
    const err = await startError({ everything: everythingEntry() }, [proxyJsonRpc()]);
    expect(errors.FMCP_ERR_STRATEGY_MISSING.is(err), err.message).to.equal(true);
    expect(err.message).to.match(/test-config\.json: mcpServers\.everything: no plugin handles transport for "command .*node" \(known: none\)\. Load a plugin that does with --plugin <module> or a "plugins" list in the config$/);
  });

  it('without transport-http: a remote server is a start-up error listing the transports there are', async () => {
    const err = await startError({ remote: { url: 'http://127.0.0.1:9/mcp' } }, [proxyJsonRpc(), stdio()]);
    expect(err.message).to.match(/mcpServers\.remote: no plugin handles transport for "url http:\/\/127\.0\.0\.1:9\/mcp" \(known: stdio\)/);
  });

  describe('auth strategies are found by auth.type/flow, and a missing one names itself and how to load one', () => {
    const cases: { what: string; auth: Record<string, unknown>; plugins: () => Plugin[]; key: string; known: string }[] = [
      { what: 'oauth2/pkce without auth-oauth2-pkce', auth: pkceBlock, plugins: () => [apiKeyAuth({ env })], key: 'oauth2/pkce', known: 'api_key' },
      { what: 'api_key without the api-key plugin', auth: apiKeyBlock, plugins: () => [authOAuth2Pkce({ env })], key: 'api_key', known: 'oauth2/pkce' },
      { what: 'oauth2/client_credentials with only auth-oauth2-pkce', auth: ccBlock, plugins: () => [authOAuth2Pkce({ env }), apiKeyAuth({ env })], key: 'oauth2/client_credentials', known: 'oauth2/pkce, api_key' },
      { what: 'any auth with no auth plugin at all', auth: pkceBlock, plugins: () => [], key: 'oauth2/pkce', known: 'none' },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const err = await startError({ guarded: { ...everythingEntry(), auth: c.auth as ServerEntry['auth'] } }, [proxyJsonRpc(), stdio(), ...c.plugins()]);
        expect(errors.FMCP_ERR_STRATEGY_MISSING.is(err), err.message).to.equal(true);
        expect(err.message).to.match(/\/test-config\.json: mcpServers\.guarded\.auth: /);
        expect(err.message).to.include(`: no plugin handles auth "${c.key}" (known: ${c.known}). Load a plugin that does with --plugin <module> or a "plugins" list in the config`);
      });
    }
  });

  it('every built-in plus both example plugins: each server claimed by its own strategy, side by side', async () => {
    const gw = await start(
      { open: everythingEntry(), mail: { ...everythingEntry(), auth: pkceBlock }, calc: { ...everythingEntry(), auth: apiKeyBlock }, reports: { ...everythingEntry(), auth: ccBlock } },
      [...builtinPlugins().filter((p) => p.name !== 'transport-stdio' && p.name !== 'auth-oauth2-pkce'), stdio(), authOAuth2Pkce({ env }), apiKeyAuth({ env }), oauth2ClientCredentials({ env })],
    );
    const claimed = Object.fromEntries(gw.kernel.servers.list().map((s) => [s.name, `${s.transport} ${s.auth ?? '-'}`]));
    expect(claimed).to.deep.equal({ open: 'stdio -', mail: 'stdio oauth2/pkce', calc: 'stdio api_key', reports: 'stdio oauth2/client_credentials' });
    expect(Object.fromEntries(gw.kernel.authStrategies.keys().map((k) => [k, gw.kernel.authStrategies.owner(k)]))).to.deep.equal({
      'oauth2/pkce': 'auth-oauth2-pkce',
      api_key: 'api-key',
      'oauth2/client_credentials': 'oauth2-client-credentials',
    });
    expect((await postJson(gw.url('/calc/mcp'), echo('x'))).status).to.equal(401);
    expect((await postJson(gw.url('/mail/mcp'), echo('x'))).status).to.equal(401);
    expect(echoed(await postJson(gw.url('/open/mcp'), echo('open')))).to.equal('Echo: open');
  });
});
