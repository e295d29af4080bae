import { expect } from 'chai';
import { definePlugin, errors, proxyJsonRpc, transportStdio } from '../../../index.js';
import { fixture } from '../../helpers/paths.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

/** A test strategy: X-Key is the caller; "guest-*" callers draw from a quota of 2 processes. */
const quotaAuth = definePlugin({
  name: 'test-quota-auth',
  register(api) {
    api.authStrategies.register('quota', {
      key: 'quota',
      authenticate(ctx) {
        const key = ctx.req.headers['x-key'];
        if (typeof key !== 'string') throw errors.FMCP_ERR_UNAUTHORIZED('send X-Key');
        return { key: `k:${key}`, env: {}, ...(key.startsWith('guest-') ? { quota: { name: 'guests', max: 2 } } : {}) };
      },
    });
  },
});

const pidCall = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pid', arguments: {} } };
const slowCall = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: { message: 'done', ms: 3000 } } };
type Rpc = { result?: { content: { text: string }[] }; error?: { message: string } };

describe('proxy-jsonrpc: Identity.quota, a separate share of a server\'s processes', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { shared: { command: process.execPath, args: [fixture('proxy-mini.mjs')], auth: { type: 'quota' } } },
      { plugins: [transportStdio(), proxyJsonRpc({ maxInstances: 2, instanceEvictIdleMs: 0 }), quotaAuth] },
    );
  });
  after(() => gw.stop());

  const pidOf = async (key: string): Promise<string> => {
    const res = await postJson(gw.url('/shared/mcp'), pidCall, { 'x-key': key });
    expect(res.status, res.text).to.equal(200);
    return (res.json as Rpc).result!.content[0]!.text;
  };

  it('makes room for a caller with a quota only by stopping a process of the same quota', async () => {
    const members = [await pidOf('alice'), await pidOf('bob')];
    const guests: string[] = [];
    for (let i = 0; i < 6; i++) guests.push(await pidOf(`guest-${i}`));
    expect(new Set(guests).size).to.equal(6);
    expect(guests).to.not.include.members(members);
    expect([await pidOf('alice'), await pidOf('bob')]).to.deep.equal(members);
  });

  it('refuses a call when every process of the quota is busy, and leaves the others alone', async () => {
    const busy = [postJson(gw.url('/shared/mcp'), slowCall, { 'x-key': 'guest-busy-1' }), postJson(gw.url('/shared/mcp'), slowCall, { 'x-key': 'guest-busy-2' })];
    // until the gateway holds both slow calls, a late guest takes an idle place; then it is refused
    let refused: Rpc | undefined;
    for (let attempt = 0; attempt < 20 && refused?.error === undefined; attempt++) {
      refused = (await postJson(gw.url('/shared/mcp'), pidCall, { 'x-key': `guest-late-${attempt}` })).json as Rpc;
    }
    expect(refused!.error?.message).to.equal('Server "shared" has 2 processes busy for its "guests" callers (their limit), each with a call in flight, an open stream or a message in the last 0 s, so no process was started for this one: retry after the time in Retry-After, or raise that limit (their auth strategy sets it, e.g. unverifiedProcesses)');
    for (const res of await Promise.all(busy)) expect((res.json as Rpc).result!.content[0]!.text).to.equal('done');
    expect(await pidOf('alice')).to.match(/^\d+$/);
  });
});
