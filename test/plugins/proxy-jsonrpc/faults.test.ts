import { expect } from 'chai';
import { request as httpRequest } from 'node:http';
import { fixture } from '../../helpers/paths.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

const mini = () => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')] });
const call = (id: unknown, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
type Rpc = { id: unknown; result?: { content: { text: string }[] }; error?: { code: number; message: string } };

describe('proxy-jsonrpc under faults', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ mini: mini() }, { proxy: { callTimeoutMs: 400 } });
  });
  after(() => gw.stop());

  const health = async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { mini: { pid: number; inFlight: number; restarts: number; state: string } } }).servers.mini;

  it('ends a call the server never answers with a JSON-RPC error, and tells the server', async () => {
    const res = await postJson(gw.url('/mini/mcp'), call(11, 'never'));
    const body = res.json as Rpc;
    expect(body.id).to.equal(11);
    expect(body.error!.code).to.equal(-32001);
    expect(body.error!.message).to.match(/did not answer within 400 ms/);
    const seen = (await postJson(gw.url('/mini/mcp'), call(12, 'cancelled'))).json as Rpc;
    expect(JSON.parse(seen.result!.content[0]!.text)).to.have.length.greaterThan(0);
  });

  it('forgets a call whose client disconnects, and tells the server', async () => {
    const before = JSON.parse(((await postJson(gw.url('/mini/mcp'), call(1, 'cancelled'))).json as Rpc).result!.content[0]!.text) as unknown[];
    await new Promise<void>((resolve) => {
      const port = gw.kernel.address().port;
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json' } });
      req.on('error', () => resolve());
      req.end(JSON.stringify(call(2, 'slow', { message: 'x', ms: 300 })));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    await new Promise((r) => setTimeout(r, 50));
    expect((await health()).inFlight).to.equal(0);
    const after = JSON.parse(((await postJson(gw.url('/mini/mcp'), call(3, 'cancelled'))).json as Rpc).result!.content[0]!.text) as unknown[];
    expect(after.length).to.equal(before.length + 1);
  });

  it('fails 50 calls in flight within a second when the server is killed, then serves the restarted one', async () => {
    const pid = (await health()).pid;
    const started = Date.now();
    const calls = Array.from({ length: 50 }, (_, i) => postJson(gw.url('/mini/mcp'), call(i, 'slow', { message: `m${i}`, ms: 5000 })));
    await new Promise((r) => setTimeout(r, 100));
    process.kill(pid, 'SIGKILL');
    const answers = await Promise.all(calls);
    expect(Date.now() - started).to.be.lessThan(1500);
    answers.forEach((res, i) => {
      const body = res.json as Rpc;
      expect(body.id).to.equal(i);
      expect(body.error!.code).to.equal(-32000);
      expect(body.error!.message).to.include('mini');
    });
    let next: Rpc | undefined;
    for (let attempt = 0; attempt < 50 && !next?.result; attempt++) {
      next = (await postJson(gw.url('/mini/mcp'), call(99, 'echo', { message: 'back' }))).json as Rpc;
      if (!next.result) await new Promise((r) => setTimeout(r, 100));
    }
    expect(next!.result!.content[0]!.text).to.equal('back');
    const h = await health();
    expect(h.pid).to.not.equal(pid);
    expect(h.restarts).to.be.greaterThan(0);
  });

  it('answers every call of a server that crashes on one of them', async () => {
    const answers = await Promise.all([postJson(gw.url('/mini/mcp'), call(1, 'exit')), postJson(gw.url('/mini/mcp'), call(2, 'slow', { message: 'x', ms: 2000 }))]);
    for (const res of answers) expect((res.json as Rpc).error!.code).to.equal(-32000);
  });
});

describe('proxy-jsonrpc with a server that fails at start', () => {
  let gw: TestGateway;
  let readyFile: string;
  before(async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    readyFile = `${mkdtempSync(`${tmpdir()}/fmcp-`)}/ready`;
    const { transportStdio, proxyJsonRpc } = await import('../../../index.js');
    gw = await startGateway(
      { flaky: { command: process.execPath, args: [fixture('proxy-ready-file.mjs')], env: { READY_FILE: readyFile } } },
      { plugins: [transportStdio({ restartBaseMs: 10, restartMaxMs: 300, maxFailedStarts: 2 }), proxyJsonRpc()] },
    );
  });
  after(() => gw.stop());

  it('reports the failure in calls and /health, then comes back by itself once its cause is fixed', async () => {
    let body: Rpc | undefined;
    for (let i = 0; i < 40; i++) {
      body = (await postJson(gw.url('/flaky/mcp'), call(1, 'echo', { message: 'x' }))).json as Rpc;
      const state = ((await (await fetch(gw.url('/health'))).json()) as { servers: { flaky: { state: string } } }).servers.flaky.state;
      if (state === 'failed') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(body!.error!.message).to.include('flaky');
    const health = ((await (await fetch(gw.url('/health'))).json()) as { servers: { flaky: { state: string; lastError: string } } }).servers.flaky;
    expect(health.state).to.equal('failed');
    expect(health.lastError).to.include('not ready');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(readyFile, '');
    let answer: Rpc | undefined;
    for (let i = 0; i < 40 && !answer?.result; i++) {
      answer = (await postJson(gw.url('/flaky/mcp'), call(2, 'echo', { message: 'recovered' }))).json as Rpc;
      if (!answer.result) await new Promise((r) => setTimeout(r, 50));
    }
    expect(answer!.result!.content[0]!.text).to.equal('recovered');
  });
});
