import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { proxyJsonRpc, transportSse, transportStdio } from '../../index.js';
import { everythingMetadata, processesWith, RunningCli, suiteTempTree, type CliResult } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { everythingServer, fixture } from '../helpers/paths.js';
import { waitFor } from '../helpers/request.js';
import { dropMidway, echoOnce, health, streamedCall, waitForHealth } from './gateway-probe.js';
import { CallFailure, describeTally, echoLoad, messagesOf, send, sleep, type HttpAnswer, type RpcMessage, type Tally } from './load-driver.js';

const node = process.execPath;
const portOf = (gw: TestGateway): number => gw.kernel.address().port;
const call = (id: unknown, name: string, args: Record<string, unknown> = {}, meta?: Record<string, unknown>): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } });

/** The single JSON-RPC response of an answer (JSON or SSE). */
function responseOf(text: string, contentType = 'application/json'): RpcMessage {
  const response = messagesOf({ status: 200, headers: { 'content-type': contentType }, text }).find((m) => m.method === undefined);
  if (!response) throw new Error(`no JSON-RPC response in ${text.slice(0, 300)}`);
  return response;
}

describe('reliability: faults', function () {
  this.timeout(60_000);

  describe('a server killed with SIGKILL every few seconds under load', () => {
    const marker = `fmcp-rel-kill-${randomUUID()}`;
    let gw: TestGateway;
    before(async () => {
      // a shared server that died for good is retried by the next call after a second instead of 30 s, so the test can see it come back
      gw = await startGateway({ everything: { command: node, args: [everythingServer, 'stdio', marker] } }, { proxy: { retryFailedAfterMs: 1000 } });
    });
    after(async () => {
      await gw.stop();
      await waitFor(() => processesWith(marker).length === 0, 5000, 'the server processes to end');
    });

    it('answers every call with its own result or a JSON-RPC error, none hangs, and serves again after the kills', async () => {
      const port = portOf(gw);
      const kills: number[] = [];
      const killing = (async () => {
        for (let i = 0; i < 5; i++) {
          await sleep(3000);
          const pid = (await health(port)).servers.everything!.pid;
          if (pid === undefined) continue; // restarting right now: nothing to kill this time
          process.kill(pid, 'SIGKILL');
          kills.push(pid);
        }
        await sleep(500);
      })();
      const tally = await echoLoad({ port, path: '/everything/mcp', clients: 16, until: killing, timeoutMs: 10_000 });
      console.log(`      SIGKILL under load: ${kills.length} kills, ${describeTally(tally)}`);
      expect(kills.length, 'kills').to.be.at.least(3);
      expect(tally.counts.hung, describeTally(tally)).to.equal(0);
      expect(tally.counts.wrong, describeTally(tally)).to.equal(0);
      expect(tally.counts['http-error'], describeTally(tally)).to.equal(0);
      expect(tally.counts.network, describeTally(tally)).to.equal(0);
      expect(tally.counts.ok).to.be.greaterThan(0);
      expect(tally.counts['rpc-error']).to.be.greaterThan(0);
      // the kills are over: calls succeed again, on a process that is not one of the killed ones
      let served = false;
      const deadline = Date.now() + 15_000;
      while (!served && Date.now() < deadline) {
        served = await echoOnce(port, 'everything').then(() => true, () => false);
        if (!served) await sleep(200);
      }
      expect(served, 'a call succeeds within 15 s of the last kill').to.equal(true);
      const after = (await health(port)).servers.everything!;
      expect(kills).to.not.include(after.pid);
      expect(after.inFlight).to.equal(0);
    });
  });

  describe('a server that never answers', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway(
        {
          silent: { command: node, args: [fixture('rel-silent.mjs')] },
          mute: { command: node, args: [fixture('rel-silent.mjs'), 'mute'] },
          everything: { command: node, args: [everythingServer, 'stdio'] },
        },
        { plugins: [transportStdio(), proxyJsonRpc({ callTimeoutMs: 500, handshakeTimeoutMs: 500 }), transportSse()] },
      );
    });
    after(() => gw.stop());

    it('ends 20 concurrent calls with a JSON-RPC error each, with its own id, within the call timeout: once 3 time out the hung server is restarted', async () => {
      const port = portOf(gw);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send({ port, path: '/silent/mcp', body: call(`q${i}`, 'anything'), timeoutMs: 5000 })));
      const timedOut = { code: -32001, message: 'Server "silent" did not answer within 500 ms; the call was cancelled' };
      const restarted = {
        code: -32000,
        message: 'Server "silent" is unavailable: the process stopped answering (3 calls in a row had no answer within 500 ms, and it sent nothing meanwhile), so the gateway ended it; it is restarting, retry the call',
      };
      const errors = answers.map((answer, i) => {
        expect(answer.status).to.equal(200);
        const response = responseOf(answer.text, String(answer.headers['content-type']));
        expect(response.id).to.equal(`q${i}`);
        expect([timedOut, restarted]).to.deep.include(response.error);
        return response.error;
      });
      // the first two time out; the third makes the gateway restart the server, which answers the rest
      expect(errors.filter((e) => e!.code === timedOut.code).length).to.be.at.least(2);
      expect(errors.filter((e) => e!.code === restarted.code).length).to.be.at.least(1);
      await waitForHealth(port, 'silent', (h) => h.ready === true && h.restarts === 1 && h.inFlight === 0, 15_000, 'the silent server up again after its restart');
    });

    it('ends a streamed call (POST /sse) with the timeout error as its last event', async () => {
      const messages = await streamedCall(portOf(gw), 'silent', { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'x', arguments: {} } }, 5000);
      const last = messages.at(-1)!;
      expect(last.id).to.equal(7);
      expect(last.error!.code).to.equal(-32001);
    });

    it('answers calls to a server that does not even answer initialize with a JSON-RPC error, and says so in /health', async () => {
      const port = portOf(gw);
      const answers = await Promise.all([1, 2, 3].map((id) => send({ port, path: '/mute/mcp', body: call(id, 'anything'), timeoutMs: 5000 })));
      for (const [i, answer] of answers.entries()) {
        const response = responseOf(answer.text, String(answer.headers['content-type']));
        expect(response.id).to.equal(i + 1);
        expect(response.error, answer.text).to.be.an('object');
        expect(response.error!.message).to.include('mute');
      }
      const mute = (await health(port)).servers.mute!;
      expect(mute.ready).to.equal(false);
      expect(mute.lastError).to.match(/initialize/);
      expect(mute.inFlight).to.equal(0);
    });

    it('keeps serving the other servers meanwhile', async () => {
      // its own gateway with a long call timeout: the silent server's calls stay in flight all along, so
      // an echo that waited behind them (head-of-line blocking) would not come back before they end
      const long = await startGateway(
        { silent: { command: node, args: [fixture('rel-silent.mjs')] }, everything: { command: node, args: [everythingServer, 'stdio'] } },
        { plugins: [transportStdio(), proxyJsonRpc({ callTimeoutMs: 60_000 }), transportSse()] },
      );
      try {
        const port = portOf(long);
        const silent = [1, 2].map((id) => send({ port, path: '/silent/mcp', body: call(id, 'x'), timeoutMs: 60_000 }).then(() => 'answered', () => 'failed'));
        await waitForHealth(port, 'silent', (h) => h.inFlight === 2, 10_000, 'two silent calls in flight');
        // each throws unless its own payload comes back
        await Promise.all(Array.from({ length: 10 }, (_, i) => echoOnce(port, 'everything', {}, `e${i}`)));
        expect((await health(port)).servers.silent!.inFlight, 'the silent calls are still in flight').to.equal(2);
        await long.stop();
        await Promise.all(silent); // ended by the stop; only their sockets matter here
      } finally {
        if (long.kernel.state !== 'stopped') await long.stop();
      }
    });
  });

  describe('a server that writes a 10 MB line', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ big: { command: node, args: [fixture('rel-big-line.mjs')] }, everything: { command: node, args: [everythingServer, 'stdio'] } });
    });
    after(() => gw.stop());

    const tenMb = 10 * 1024 * 1024;
    const checkBig = (response: RpcMessage, id: unknown): void => {
      expect(response.id).to.equal(id);
      const text = (response.result!.content as { text: string }[])[0]!.text;
      expect(text.length).to.equal(tenMb);
      expect(text.endsWith(`|end:${tenMb}`)).to.equal(true);
      expect(text.startsWith('0123456789abcdef0123')).to.equal(true);
    };

    it('delivers the whole answer over /mcp while small calls to the same server keep their own answers', async () => {
      const port = portOf(gw);
      const bigCall = send({ port, path: '/big/mcp', body: call('big-1', 'big', { bytes: tenMb }), timeoutMs: 30_000 });
      const small = Array.from({ length: 20 }, (_, i) => send({ port, path: '/big/mcp', body: call(i, 'echo', { message: `small-${i}` }), timeoutMs: 30_000 }));
      const answer = await bigCall;
      expect(answer.status).to.equal(200);
      checkBig(responseOf(answer.text, String(answer.headers['content-type'])), 'big-1');
      for (const [i, s] of (await Promise.all(small)).entries()) {
        const response = responseOf(s.text, String(s.headers['content-type']));
        expect(response.id).to.equal(i);
        expect((response.result!.content as { text: string }[])[0]!.text).to.equal(`Echo: small-${i}`);
      }
    });

    it('delivers it as the last event of POST /sse', async () => {
      const messages = await streamedCall(portOf(gw), 'big', JSON.parse(call('big-2', 'big', { bytes: tenMb })) as Record<string, unknown>, 30_000);
      checkBig(messages.at(-1)!, 'big-2');
    });

    it('keeps serving after three of them', async () => {
      const port = portOf(gw);
      for (let i = 0; i < 3; i++) {
        const answer = await send({ port, path: '/big/mcp', body: call(`b${i}`, 'big', { bytes: tenMb }), timeoutMs: 30_000 });
        checkBig(responseOf(answer.text, String(answer.headers['content-type'])), `b${i}`);
      }
      await echoOnce(port, 'big');
      await echoOnce(port, 'everything');
      const h = await health(port);
      expect(h.status).to.equal('ok');
      expect(h.servers.big!.inFlight).to.equal(0);
      expect(h.servers.big!.restarts).to.equal(0);
    });
  });

  describe('a server that exits at start, beside one that works', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ broken: { command: node, args: [fixture('rel-exit-at-start.mjs')] }, everything: { command: node, args: [everythingServer, 'stdio'] } });
    });
    after(() => gw.stop());

    it('answers calls to it with a JSON-RPC error that names the server and its reason, within a bound', async () => {
      const port = portOf(gw);
      const answers = await Promise.all([1, 2, 3].map((id) => send({ port, path: '/broken/mcp', body: call(id, 'echo', { message: 'x' }), timeoutMs: 15_000 })));
      for (const [i, answer] of answers.entries()) {
        expect(answer.status).to.equal(200);
        const response = responseOf(answer.text, String(answer.headers['content-type']));
        expect(response.id).to.equal(i + 1);
        expect(response.error!.code).to.equal(-32000);
        expect(response.error!.message).to.include('broken');
        expect(response.error!.message).to.include('REL_REQUIRED_SETTING is not set');
      }
      const streamed = await streamedCall(port, 'broken', { jsonrpc: '2.0', id: 'sse', method: 'tools/list' }, 15_000);
      expect(streamed.at(-1)!.error!.message).to.include('broken');
    });

    it('says so in /health, with the reason, while the other server is ready', async () => {
      const h = await health(portOf(gw));
      expect(h.servers.broken!.ready).to.equal(false);
      expect(h.servers.broken!.state).to.be.oneOf(['down', 'starting', 'failed']);
      expect(h.servers.broken!.lastError).to.include('REL_REQUIRED_SETTING is not set');
      expect(h.servers.everything!.ready).to.equal(true);
    });

    it('keeps serving the other server while calls to the broken one fail', async () => {
      const port = portOf(gw);
      const results = await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => send({ port, path: '/broken/mcp', body: call(i, 'echo', { message: 'x' }), timeoutMs: 15_000 })),
        ...Array.from({ length: 10 }, (_, i) => echoOnce(port, 'everything', {}, `ok${i}`)),
      ]);
      expect(results).to.have.length(20);
    });
  });

  describe('clients that drop their connection', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ everything: { command: node, args: [everythingServer, 'stdio'] } });
    });
    after(() => gw.stop());

    const longRun = (id: unknown, progress: boolean): string =>
      call(id, 'trigger-long-running-operation', { duration: 3, steps: 6 }, progress ? { progressToken: `p-${String(id)}` } : undefined);
    const inFlightIsZero = (port: number): Promise<unknown> => waitForHealth(port, 'everything', (h) => h.inFlight === 0, 3000, 'inFlight back to 0');

    it('forgets 20 streamed calls (POST /sse) dropped after their first progress event', async () => {
      const port = portOf(gw);
      const got = await Promise.all(
        Array.from({ length: 20 }, (_, i) => dropMidway(port, { path: '/everything/sse', body: longRun(`s${i}`, true) }, { received: /notifications\/progress/ })),
      );
      for (const g of got) expect(g).to.include('"progress":1');
      await inFlightIsZero(port);
      await echoOnce(port, 'everything');
    });

    it('forgets 20 calls on /mcp dropped mid-call', async () => {
      const port = portOf(gw);
      await Promise.all(Array.from({ length: 20 }, (_, i) => dropMidway(port, { path: '/everything/mcp', body: longRun(`m${i}`, false) }, { afterMs: 300 })));
      await inFlightIsZero(port);
      await echoOnce(port, 'everything');
    });

    it('forgets 20 calls on /mcp with an SSE answer dropped after the first progress event', async () => {
      const port = portOf(gw);
      const got = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          dropMidway(port, { path: '/everything/mcp', body: longRun(`mp${i}`, true), headers: { accept: 'application/json, text/event-stream' } }, { received: /notifications\/progress/ }),
        ),
      );
      for (const g of got) expect(g).to.include('"progress":1');
      await inFlightIsZero(port);
      await echoOnce(port, 'everything');
    });

    it('survives 20 clients that go away in the middle of sending their body', async () => {
      const port = portOf(gw);
      await Promise.all(Array.from({ length: 20 }, (_, i) => dropMidway(port, { path: '/everything/mcp', body: longRun(`b${i}`, false), partialBody: true }, { afterMs: 100 })));
      await inFlightIsZero(port);
      await echoOnce(port, 'everything');
    });

    it('ends the sessions of 10 legacy SSE streams and 10 Streamable HTTP GET streams whose clients went away', async () => {
      const port = portOf(gw);
      await Promise.all(Array.from({ length: 10 }, () => dropMidway(port, { method: 'GET', path: '/everything/sse', headers: { accept: 'text/event-stream' } }, { received: /event: endpoint/ })));
      // Streamable HTTP: open a session, open its GET stream, drop the stream, then end the session
      for (let i = 0; i < 10; i++) {
        const init = await send({ port, path: '/everything/mcp', timeoutMs: 5000, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'drop', version: '1' } } }) });
        const sessionId = String(init.headers['mcp-session-id']);
        await dropMidway(port, { method: 'GET', path: '/everything/mcp', headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' } }, { afterMs: 100 });
        const del = await send({ port, path: '/everything/mcp', method: 'DELETE', body: '', timeoutMs: 5000, headers: { 'mcp-session-id': sessionId } });
        expect(del.status).to.equal(204);
      }
      await waitForHealth(port, 'everything', (h) => h.sessions === 0 && h.inFlight === 0, 3000, 'sessions back to 0');
      await echoOnce(port, 'everything');
    });
  });

  describe('the gateway (fluidmcp run) stopped with SIGTERM under load', () => {
    const tree = suiteTempTree();
    const marker = `fmcp-rel-sigterm-${randomUUID()}`;
    type Settled = { answer?: HttpAnswer; failure?: CallFailure };
    const settle = (p: Promise<HttpAnswer>): Promise<Settled> => p.then((answer) => ({ answer }), (failure: CallFailure) => ({ failure }));
    let cli: RunningCli;
    let exit: CliResult | undefined;
    let tookMs = 0;
    let leftover: number[] = [];
    let tally: Tally;
    let slow: Settled[] = [];
    let streams: Settled[] = [];
    let medium: Settled[] = [];

    before(async function () {
      this.timeout(60_000);
      // the echo load on one server; the calls the signal must find in flight on a second one, so
      // /health counts exactly them (waits for events, not sleeps)
      const config = tree.write('config.json', everythingMetadata(['everything', 'long'], marker));
      cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0']);
      const port = Number(new URL(await cli.ready(30_000)).port);
      for (const name of ['everything', 'long']) await waitForHealth(port, name, (h) => h.state === 'up', 30_000, `${name} up`);
      expect(processesWith(marker).length).to.equal(2);

      const load = echoLoad({ port, path: '/everything/mcp', clients: 32, until: cli.exited, timeoutMs: 15_000 });
      await waitForHealth(port, 'everything', (h) => (h.inFlight ?? 0) > 0, 10_000, 'the echo load under way');
      // calls surely in the gateway's hands when the signal comes: 5 s each at the server
      const slowCalls = Array.from({ length: 8 }, (_, i) =>
        settle(send({ port, path: '/long/mcp', body: call(`slow-${i}`, 'trigger-long-running-operation', { duration: 5, steps: 5 }), timeoutMs: 15_000 })),
      );
      const streamCalls = Array.from({ length: 4 }, (_, i) =>
        settle(send({ port, path: '/long/sse', body: call(`stream-${i}`, 'trigger-long-running-operation', { duration: 5, steps: 5 }, { progressToken: i }), timeoutMs: 15_000 })),
      );
      await waitForHealth(port, 'long', (h) => h.inFlight === 12, 10_000, 'the 12 long calls in flight');
      // calls that finish at the server 0.8 s after they start, so they end while the gateway drains
      const mediumCalls = Array.from({ length: 4 }, (_, i) =>
        settle(send({ port, path: '/long/mcp', body: call(`medium-${i}`, 'trigger-long-running-operation', { duration: 0.8, steps: 1 }), timeoutMs: 15_000, agent: new Agent({ keepAlive: true }) })),
      );
      await waitForHealth(port, 'long', (h) => h.inFlight === 16, 10_000, 'the 4 medium calls in flight too');
      const signalled = Date.now();
      cli.signal('SIGTERM');
      exit = await Promise.race([cli.exited, sleep(12_000).then(() => undefined)]);
      tookMs = Date.now() - signalled;
      leftover = processesWith(marker);
      tally = await load;
      slow = await Promise.all(slowCalls);
      streams = await Promise.all(streamCalls);
      medium = await Promise.all(mediumCalls);
      console.log(`      SIGTERM under load: exit ${exit?.code ?? 'none'} after ${tookMs} ms, ${leftover.length} server processes left; load ${describeTally(tally)}`);
    });
    after(async () => {
      await cli?.stop('SIGKILL').catch(() => undefined);
    });

    it('exits with code 0 within 10 s and leaves no server process', () => {
      expect(exit, 'the gateway exited').to.not.equal(undefined);
      expect(tookMs).to.be.lessThan(10_000);
      expect(exit!.code).to.equal(0);
      expect(leftover, 'server processes left behind').to.deep.equal([]);
    });

    it('lets no call of the load hang or get a wrong answer', () => {
      expect(tally.counts.ok).to.be.greaterThan(0);
      expect(tally.counts.hung, describeTally(tally)).to.equal(0);
      expect(tally.counts.wrong, describeTally(tally)).to.equal(0);
    });

    it('answers a call in flight while it drains, and tells the keep-alive client to close the connection', () => {
      for (const [i, r] of medium.entries()) {
        expect(r.failure?.message, `medium call ${i} got no answer`).to.equal(undefined);
        const response = responseOf(r.answer!.text, String(r.answer!.headers['content-type']));
        expect(response.id).to.equal(`medium-${i}`);
        expect(response.result !== undefined || response.error !== undefined, r.answer!.text).to.equal(true);
        // a keep-alive client that reuses the connection after this answer would lose its next call to a reset
        expect(r.answer!.headers.connection).to.equal('close');
      }
    });

    it('answers every call in flight on /mcp with its result or a JSON-RPC error, never a cut connection', () => {
      for (const [i, r] of slow.entries()) {
        expect(r.failure?.message, `slow call ${i} got no answer`).to.equal(undefined);
        expect(r.answer!.status).to.equal(200);
        const response = responseOf(r.answer!.text, String(r.answer!.headers['content-type']));
        expect(response.id).to.equal(`slow-${i}`);
        expect(response.result !== undefined || response.error !== undefined).to.equal(true);
      }
    });

    it('ends every streamed call in flight (POST /sse) with its response or error as the last event', () => {
      for (const [i, r] of streams.entries()) {
        expect(r.failure?.message, `streamed call ${i} got no answer`).to.equal(undefined);
        const last = messagesOf(r.answer!).at(-1);
        expect(last?.id, `the last event of streamed call ${i}: ${r.answer!.text.slice(-300)}`).to.equal(`stream-${i}`);
        expect(last!.result !== undefined || last!.error !== undefined).to.equal(true);
      }
    });
  });
});
