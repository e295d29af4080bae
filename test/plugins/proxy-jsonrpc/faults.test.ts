import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from '../../helpers/paths.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { until } from '../../helpers/request.js';
import { proxyJsonRpc, transportStdio } from '../../../index.js';

const mini = () => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')] });
const call = (id: unknown, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
type Rpc = { id: unknown; result?: { content: { text: string }[] }; error?: { code: number; message: string } };
type MiniHealth = { pid: number; inFlight: number; restarts: number; state: string };

/** What the server itself recorded: the ids it received with each tool, and the ids it was told were cancelled. */
async function recorded(gw: TestGateway, server: string): Promise<{ calls: [number, string][]; cancelled: number[] }> {
  const text = async (name: string) => ((await postJson(gw.url(`/${server}/mcp`), call(`probe-${name}`, name))).json as Rpc).result!.content[0]!.text;
  return { calls: JSON.parse(await text('calls')) as [number, string][], cancelled: JSON.parse(await text('cancelled')) as number[] };
}

const healthOf = async (gw: TestGateway): Promise<MiniHealth> => ((await (await fetch(gw.url('/health'))).json()) as { servers: { mini: MiniHealth } }).servers.mini;

describe('proxy-jsonrpc under faults', () => {
  describe('with a 400 ms call timeout', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ mini: mini() }, { proxy: { callTimeoutMs: 400 } });
    });
    after(() => gw.stop());

    it('ends a call the server never answers with a JSON-RPC error, and tells the server that very call is cancelled', async () => {
      const res = await postJson(gw.url('/mini/mcp'), call(11, 'never'));
      const body = res.json as Rpc;
      expect(body.id).to.equal(11);
      expect(body.error!.code).to.equal(-32001);
      expect(body.error!.message).to.match(/did not answer within 400 ms/);
      const seen = await recorded(gw, 'mini');
      const neverIds = seen.calls.filter(([, name]) => name === 'never').map(([id]) => id);
      expect(neverIds).to.have.length(1);
      expect(seen.cancelled).to.deep.equal(neverIds);
    });

    it('forgets a call whose client disconnects, and tells the server that very call is cancelled', async () => {
      const before = await recorded(gw, 'mini');
      const port = gw.kernel.address().port;
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json' } });
      req.on('error', () => undefined);
      req.end(JSON.stringify(call(2, 'slow', { message: 'x', ms: 300 })));
      await until(async () => ((await healthOf(gw)).inFlight === 1 ? true : undefined), 5000, 'the slow call to reach the server');
      req.destroy();
      await until(async () => ((await healthOf(gw)).inFlight === 0 ? true : undefined), 5000, 'the call to be forgotten');
      const after = await recorded(gw, 'mini');
      const slowId = after.calls.slice(before.calls.length).find(([, name]) => name === 'slow')![0];
      expect(after.cancelled).to.deep.equal([...before.cancelled, slowId]);
    });
  });

  describe('with the default call timeout', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ mini: mini() });
    });
    after(() => gw.stop());

    it('fails the 50 calls in flight when the server is killed, then serves the restarted one', async () => {
      const pid = (await healthOf(gw)).pid;
      const calls = Array.from({ length: 50 }, (_, i) => postJson(gw.url('/mini/mcp'), call(i, 'slow', { message: `m${i}`, ms: 60_000 })));
      await until(async () => ((await healthOf(gw)).inFlight === 50 ? true : undefined), 10_000, '50 calls in flight');
      process.kill(pid, 'SIGKILL');
      // each call would take a minute: an answer at all within the test's timeout is the crash's answer
      const answers = await Promise.all(calls);
      answers.forEach((res, i) => {
        const body = res.json as Rpc;
        expect(body.id).to.equal(i);
        expect(body.error!.code).to.equal(-32000);
        expect(body.error!.message).to.include('mini');
      });
      const next = await until(async () => {
        const rpc = (await postJson(gw.url('/mini/mcp'), call(99, 'echo', { message: 'back' }))).json as Rpc;
        return rpc.result ? rpc : undefined;
      }, 10_000, 'the restarted server to answer');
      expect(next.result!.content[0]!.text).to.equal('back');
      const h = await healthOf(gw);
      expect(h.pid).to.not.equal(pid);
      expect(h.restarts).to.equal(1);
    });

    it('answers every call of a server that crashes on one of them', async () => {
      const answers = await Promise.all([postJson(gw.url('/mini/mcp'), call(1, 'exit')), postJson(gw.url('/mini/mcp'), call(2, 'slow', { message: 'x', ms: 60_000 }))]);
      expect(answers.map((res) => (res.json as Rpc).error!.code)).to.deep.equal([-32000, -32000]);
    });
  });
});

describe('proxy-jsonrpc with a server that fails at start', () => {
  let gw: TestGateway;
  let dir: string;
  let readyFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fmcp-ready-'));
    readyFile = join(dir, 'ready');
    gw = await startGateway(
      { flaky: { command: process.execPath, args: [fixture('proxy-ready-file.mjs')], env: { READY_FILE: readyFile } } },
      { plugins: [transportStdio({ restartBaseMs: 10, restartMaxMs: 300, maxFailedStarts: 2 }), proxyJsonRpc()] },
    );
  });
  after(async () => {
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the failure in calls and /health, then comes back by itself once its cause is fixed', async () => {
    const flaky = async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { flaky: { state: string; lastError: string } } }).servers.flaky;
    let body: Rpc | undefined;
    await until(async () => {
      body = (await postJson(gw.url('/flaky/mcp'), call(1, 'echo', { message: 'x' }))).json as Rpc;
      return (await flaky()).state === 'failed' ? true : undefined;
    }, 10_000, 'the server to be marked failed');
    expect(body!.error!.message).to.include('flaky');
    const health = await flaky();
    expect(health.state).to.equal('failed');
    expect(health.lastError).to.include('not ready');
    writeFileSync(readyFile, '');
    const answer = await until(async () => {
      const rpc = (await postJson(gw.url('/flaky/mcp'), call(2, 'echo', { message: 'recovered' }))).json as Rpc;
      return rpc.result ? rpc : undefined;
    }, 10_000, 'the server to come back once its cause is fixed');
    expect(answer.result!.content[0]!.text).to.equal('recovered');
  });
});
