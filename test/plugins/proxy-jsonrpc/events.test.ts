import { expect } from 'chai';
import { definePlugin, errors, proxyJsonRpc, transportStdio, type Plugin } from '../../../index.js';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { waitFor } from '../../helpers/request.js';

/** A test-only auth strategy: the caller is whoever the x-user header names. */
const headerAuth: Plugin = definePlugin({
  name: 'events-test-header-auth',
  register(api) {
    api.authStrategies.register('events-test', {
      key: 'events-test',
      authenticate: (ctx) => {
        const user = ctx.req.headers['x-user'];
        if (typeof user !== 'string') throw errors.FMCP_ERR_UNAUTHORIZED('send x-user');
        return { key: `user-${user}`, env: {}, subject: user };
      },
    });
  },
});

type Seen = [string, Record<string, unknown>];

function recorder(seen: Seen[]): Plugin {
  return definePlugin({
    name: 'events-recorder',
    register(api) {
      for (const name of ['upstream.started', 'upstream.crashed', 'upstream.stopped', 'call.completed'] as const) {
        api.events.on(name, (data) => void seen.push([name, { ...data }]));
      }
    },
  });
}

const echo = (id: number): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: `m${id}` } } });

describe('proxy-jsonrpc: events', function () {
  this.timeout(20_000);
  const seen: Seen[] = [];
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        shared: everythingEntry(),
        guarded: { ...everythingEntry(), auth: { type: 'events-test' } },
        broken: { command: process.execPath, args: [fixture('stdio-crash-at-start.mjs')] },
      },
      { plugins: [transportStdio({ restartBaseMs: 20, maxFailedStarts: 2 }), proxyJsonRpc({ instanceIdleMs: 300, handshakeTimeoutMs: 5000 }), headerAuth, recorder(seen)] },
    );
  });
  after(() => gw?.stop());

  const named = (name: string, server: string): Record<string, unknown>[] => seen.filter(([n, d]) => n === name && d.server === server).map(([, d]) => d);

  it('reports a shared server that came up, and each start and crash of one that exits at once, which is retried even once failed', async () => {
    await waitFor(() => named('upstream.crashed', 'broken').length >= 3, 5000, 'three crashes of the broken server');
    await waitFor(() => named('upstream.started', 'shared').length === 1, 10_000, 'the shared server to come up');
    expect(named('upstream.started', 'shared')).to.deep.equal([{ server: 'shared' }]);
    // its process did start (stdio counts a spawned process as up), then exited, again and again
    expect(named('upstream.started', 'broken').slice(0, 3)).to.deep.equal([{ server: 'broken' }, { server: 'broken' }, { server: 'broken' }]);
    expect(named('upstream.crashed', 'broken').slice(0, 3)).to.deep.equal([
      { server: 'broken', wasUp: true, willRetry: true },
      { server: 'broken', wasUp: true, willRetry: true },
      { server: 'broken', wasUp: true, willRetry: true },
    ]);
  });

  it('reports each settled call with its server, a duration and whether it succeeded', async () => {
    const from = seen.length;
    expect((await postJson(gw.url('/shared/mcp'), echo(1))).status).to.equal(200);
    await postJson(gw.url('/shared/mcp'), { jsonrpc: '2.0', id: 2, method: 'no/such-method' });
    const calls = seen.slice(from).filter(([n]) => n === 'call.completed').map(([, d]) => d);
    expect(calls.map((c) => [c.server, c.ok])).to.deep.equal([['shared', true], ['shared', false]]);
    for (const c of calls) expect(c.ms).to.be.a('number').and.to.be.at.least(0).and.below(5000);
  });

  it('reports a process per identity that starts, and stops once idle, by server name only', async () => {
    const res = await postJson(gw.url('/guarded/mcp'), echo(3), { 'x-user': 'alice-secret-name' });
    expect(res.status).to.equal(200);
    expect(named('upstream.started', 'guarded')).to.deep.equal([{ server: 'guarded' }]);
    await waitFor(() => named('upstream.stopped', 'guarded').length === 1, 5000, 'the idle process to stop');
    expect(named('upstream.stopped', 'guarded')).to.deep.equal([{ server: 'guarded', wasUp: true }]);
    expect(JSON.stringify(seen)).not.to.contain('alice');
  });

  it('reports a crash of a process that was up, then its restart', async () => {
    const health = (await (await fetch(gw.url('/health'))).json()) as { servers: { shared: { pid: number } } };
    process.kill(health.servers.shared.pid, 'SIGKILL');
    await waitFor(() => named('upstream.started', 'shared').length === 2, 5000, 'the restart');
    expect(named('upstream.crashed', 'shared')).to.deep.equal([{ server: 'shared', wasUp: true, willRetry: true }]);
  });
});
