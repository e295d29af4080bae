import { expect } from 'chai';
import { definePlugin, errors, proxyJsonRpc, transportStdio } from '../../../index.js';
import { fixture } from '../../helpers/paths.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

/** A test strategy: X-User is who calls, X-Key their current credential (it changes on renewal). */
const renewingAuth = definePlugin({
  name: 'test-renewing-auth',
  register(api) {
    api.authStrategies.register('renewing', {
      key: 'renewing',
      authenticate(ctx) {
        const user = ctx.req.headers['x-user'];
        const key = ctx.req.headers['x-key'];
        if (typeof user !== 'string' || typeof key !== 'string') throw errors.FMCP_ERR_UNAUTHORIZED('send X-User and X-Key');
        return { key: `k:${key}`, principal: `u:${user}`, env: { CREDENTIAL: key } };
      },
    });
  },
});

const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const envCall = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'env', arguments: { name: 'CREDENTIAL' } } });
type Rpc = { result?: { content: { text: string }[] } };

describe('proxy-jsonrpc: sessions are bound to the caller\'s principal, not to its current key', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { renewing: { command: process.execPath, args: [fixture('proxy-mini.mjs')], auth: { type: 'renewing' } } },
      { plugins: [transportStdio(), proxyJsonRpc(), renewingAuth] },
    );
  });
  after(() => gw.stop());

  it('moves a session to the renewed credential\'s process and refuses it to another principal', async () => {
    const as = (user: string, key: string, session?: string) => ({ 'x-user': user, 'x-key': key, ...(session ? { 'mcp-session-id': session } : {}) });
    const opened = await postJson(gw.url('/renewing/mcp'), init, as('alice', 'one'));
    const session = opened.headers.get('mcp-session-id')!;
    const first = (await postJson(gw.url('/renewing/mcp'), envCall(1), as('alice', 'one', session))).json as Rpc;
    expect(first.result!.content[0]!.text).to.equal('one');
    const renewed = await postJson(gw.url('/renewing/mcp'), envCall(2), as('alice', 'two', session));
    expect(renewed.status).to.equal(200);
    expect((renewed.json as Rpc).result!.content[0]!.text).to.equal('two');
    const other = await postJson(gw.url('/renewing/mcp'), envCall(3), as('bob', 'two', session));
    expect(other.status).to.equal(404);
  });
});
