import { expect } from 'chai';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { webConsole } from '../../../index.js';
import { postJson } from '../../helpers/gateway.js';
import { SseReader } from '../console/sse.js';
import { filesystemEntry, flakyEntry, startGroupGateway, tempFolder, type GroupGateway } from './group-gateway.js';

type Entry = { state: string; ready: boolean; lastError?: string; group?: { members: Record<string, string> } };
type Health = { status: string; failed?: string[]; servers: Record<string, Entry> };
type Summary = { name: string; state: string; lastError?: string; instances: { id: string; state: string; lastError?: string }[] };

async function until<T>(read: () => Promise<T>, check: (value: T) => boolean, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('groups: a fail-closed group whose required member is not up, in /health and the console', function () {
  this.timeout(60_000);
  let gw: GroupGateway;
  let folder: ReturnType<typeof tempFolder>;
  let flag: string;
  before(async () => {
    folder = tempFolder();
    flag = join(folder.dir, 'crash-flag');
    writeFileSync(flag, 'crash');
    gw = await startGroupGateway(
      { fs: filesystemEntry(folder.dir), flaky: flakyEntry(flag) },
      { strict: { servers: ['fs', { server: 'flaky', required: true }], memberTimeoutMs: 2000 }, open: { servers: ['fs', 'flaky'], memberTimeoutMs: 2000 } },
      { handshakeTimeoutMs: 3000 },
      [webConsole()],
    );
  });
  after(async () => {
    await gw.stop();
    folder.remove();
  });

  const health = async (): Promise<Health> => (await (await fetch(gw.url('/health'))).json()) as Health;
  const summary = async (name: string): Promise<Summary> => (await (await fetch(gw.url(`/api/servers/${name}`))).json()) as Summary;

  it('is failed, not ready and listed as failed while it refuses calls; up again by itself once the member is', async () => {
    const h = await until(health, (x) => x.servers.strict?.state === 'failed', 'the group to be failed in /health');
    const refused = (await postJson(gw.url('/strict/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' })).json as { error: { code: number; message: string } };
    expect(refused.error.code).to.equal(-32000);
    expect(refused.error.message).to.match(/^Group "strict" is unavailable: its required member "flaky" is /);
    expect(h.status).to.equal('degraded');
    expect(h.failed).to.include('strict');
    // the fail-open group serves the other member: it is up
    expect(h.failed).to.not.include('open');
    expect(h.servers.open).to.include({ state: 'up', ready: true });
    expect(h.servers.strict).to.include({ state: 'failed', ready: false });
    expect(h.servers.strict!.lastError).to.match(/^Group "strict" is unavailable: its required member "flaky" is /);
    expect(h.servers.strict!.group!.members.fs).to.equal('up');

    // the console says the same, its process too
    const console = await summary('strict');
    expect(console.state).to.equal('failed');
    expect(console.instances.map((i) => [i.id, i.state])).to.deep.equal([['shared', 'failed']]);
    expect(console.lastError).to.match(/^Group "strict" is unavailable: its required member "flaky" is /);

    // the console's live feed tells of the group's change when the member comes back, without a call
    const port = gw.kernel.address().port;
    const feed = new SseReader(port, '/api/events');
    try {
      await feed.next((e) => e.event === 'servers', 10_000, 'the first servers event');
      rmSync(flag);
      const back = await feed.next((e) => e.event === 'server' && (JSON.parse(e.data) as Summary).name === 'strict' && (JSON.parse(e.data) as Summary).state === 'up', 30_000, 'the group up in the live feed');
      expect((JSON.parse(back.data) as Summary).lastError).to.equal(undefined);
    } finally {
      feed.close();
    }
    const up = await health();
    expect(up.servers.strict).to.include({ state: 'up', ready: true });
    expect(up.servers.strict!.lastError).to.equal(undefined);
    expect(up.failed ?? []).to.not.include('strict');
    expect((await summary('strict')).state).to.equal('up');
    const served = (await postJson(gw.url('/strict/mcp'), { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flaky__hello', arguments: {} } })).json;
    expect(served).to.deep.equal({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'hello from flaky' }] } });
  });
});
