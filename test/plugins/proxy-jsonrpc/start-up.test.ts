import { expect } from 'chai';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { proxyJsonRpc, transportSse, transportStdio } from '../../../index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture, repoRoot } from '../../helpers/paths.js';
import { freePort } from '../../helpers/services.js';

const node = process.execPath;
const mini = () => ({ command: node, args: [fixture('proxy-mini.mjs')] });
const echo = (id: number, message: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });
type Rpc = { id: unknown; result?: { content: { text: string }[] }; error?: { code: number; message: string } };
type Health = { status: string; failed?: string[]; servers: Record<string, { state: string; ready: boolean; restarts: number; inFlight: number; lastError?: string; processes?: { state: string; restarts: number }[] }> };

async function health(gw: TestGateway): Promise<Health> {
  return (await (await fetch(gw.url('/health'))).json()) as Health;
}

type LogLine = { level: number; msg: string; server?: string; error?: string; failures?: number };

/** A log destination whose JSON lines land in `logged`. */
function logSink(): { sink: Writable; logged: LogLine[] } {
  const logged: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.startsWith('{')) logged.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { sink, logged };
}

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('proxy-jsonrpc: start-up and recovery, each server on its own', function () {
  this.timeout(30_000);
  let folder: string;
  before(() => {
    folder = mkdtempSync(join(tmpdir(), 'fmcp-start-'));
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  describe('a server that sleeps 20 s before it reads stdin', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway({ sleeper: { command: node, args: [fixture('start-sleeper.mjs')] }, mini: mini() }, { proxy: { callTimeoutMs: 1000 }, waitForServers: false });
    });
    after(() => gw.stop());

    it('does not hold the gateway: it listens, /health shows the sleeper starting, and the other server answers', async () => {
      const h = await health(gw);
      expect(h.status).to.equal('ok');
      expect(h.servers.sleeper).to.include({ state: 'starting', ready: false });
      await until(async () => (await health(gw)).servers.mini!.ready, 10_000, 'mini to be ready');
      const answer = (await postJson(gw.url('/mini/mcp'), echo(1, 'meanwhile'))).json as Rpc;
      expect(answer.result!.content[0]!.text).to.equal('meanwhile');
    });

    it('ends a call that waited in its queue with an error saying it is still starting', async () => {
      const answer = (await postJson(gw.url('/sleeper/mcp'), echo(2, 'x'))).json as Rpc;
      expect(answer.id).to.equal(2);
      expect(answer.error).to.deep.equal({
        code: -32000,
        message: 'Server "sleeper" is still starting (it has not answered the gateway\'s initialize yet); the call waited 1000 ms for it: retry once GET /health shows it ready',
      });
      expect((await health(gw)).servers.sleeper!.state).to.equal('starting');
    });
  });

  describe('a server that starts late', () => {
    let gw: TestGateway;
    let wake: string;
    before(async () => {
      wake = join(folder, 'wake');
      gw = await startGateway({ late: { command: node, args: [fixture('start-sleeper.mjs')], env: { WAKE_FILE: wake, SLEEP_MS: '60000' } } }, { waitForServers: false });
    });
    after(() => gw.stop());

    it('answers a call that waited in its queue once the server reads stdin', async () => {
      expect((await health(gw)).servers.late!.state).to.equal('starting');
      const pending = postJson(gw.url('/late/mcp'), echo(3, 'queued'));
      await until(async () => (await health(gw)).servers.late!.inFlight === 1, 5000, 'the call to wait in the queue');
      writeFileSync(wake, '');
      const answer = (await pending).json as Rpc;
      expect(answer.result!.content[0]!.text).to.equal('queued');
      expect((await health(gw)).servers.late).to.include({ state: 'up', ready: true });
    });
  });

  describe('a server that exits at once with a message on stderr', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startGateway(
        { boom: { command: node, args: ['-e', "console.error('boom: missing API key'); process.exit(2)"] }, mini: mini() },
        { plugins: [transportStdio({ restartBaseMs: 10, restartMaxMs: 200, maxFailedStarts: 2 }), proxyJsonRpc(), transportSse()] },
      );
    });
    after(() => gw.stop());

    const reason = /^Server "boom" is unavailable: exited with code 2 \d+ times in a row within 10000 ms of starting; trying again in \d+ ms \(fix the server or mcpServers\.boom in .+: it comes back by itself\); last stderr: boom: missing API key$/;

    it('answers calls and initialize at once with an error naming the exit code and the last stderr line', async () => {
      await until(async () => (await health(gw)).servers.boom!.state === 'failed', 10_000, 'boom to be failed');
      const answer = (await postJson(gw.url('/boom/mcp'), echo(4, 'x'))).json as Rpc;
      expect(answer.id).to.equal(4);
      expect(answer.error!.code).to.equal(-32000);
      expect(answer.error!.message).to.match(reason);
      const init = (await postJson(gw.url('/boom/mcp'), { jsonrpc: '2.0', id: 5, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } })).json as Rpc;
      expect(init.error!.code).to.equal(-32000);
      expect(init.error!.message).to.match(reason);
      expect((await postJson(gw.url('/mini/mcp'), echo(6, 'fine'))).json).to.deep.include({ result: { content: [{ type: 'text', text: 'fine' }] } });
    });

    it('keeps retrying it with capped backoff after it counts as failed', async () => {
      await until(async () => (await health(gw)).servers.boom!.state === 'failed', 10_000, 'boom to be failed');
      const first = (await health(gw)).servers.boom!.restarts;
      await until(async () => (await health(gw)).servers.boom!.restarts >= first + 3, 10_000, 'three more tries');
      // the delay doubles from 10 ms and stays at the 200 ms cap
      await until(async () => /trying again in 200 ms/.test((await health(gw)).servers.boom!.lastError ?? ''), 10_000, 'the capped delay');
      const capped = (await health(gw)).servers.boom!.restarts;
      await until(async () => (await health(gw)).servers.boom!.restarts > capped, 10_000, 'one more try at the cap');
      const h = await health(gw);
      expect(h.servers.boom!.state).to.equal('failed');
      // the gateway serves the others: 200, but says which server failed
      expect({ status: h.status, failed: (h as { failed?: string[] }).failed }).to.deep.equal({ status: 'degraded', failed: ['boom'] });
    });
  });

  describe('a server that fails until a file exists', () => {
    let gw: TestGateway;
    let readyFile: string;
    before(async () => {
      readyFile = join(folder, 'ready');
      gw = await startGateway(
        { flaky: { command: node, args: [fixture('proxy-ready-file.mjs')], env: { READY_FILE: readyFile } } },
        { plugins: [transportStdio({ restartBaseMs: 10, restartMaxMs: 200, maxFailedStarts: 2 }), proxyJsonRpc(), transportSse()] },
      );
    });
    after(() => gw.stop());

    it('recovers by itself, without a call, once its cause is fixed', async () => {
      await until(async () => (await health(gw)).servers.flaky!.state === 'failed', 10_000, 'flaky to be failed');
      const answer = (await postJson(gw.url('/flaky/mcp'), echo(7, 'x'))).json as Rpc;
      expect(answer.error!.message).to.include('exited with code 1').and.include(`last stderr: not ready: ${readyFile} is missing`);
      writeFileSync(readyFile, '');
      await until(async () => (await health(gw)).servers.flaky!.ready, 10_000, 'flaky to recover');
      const back = (await postJson(gw.url('/flaky/mcp'), echo(8, 'recovered'))).json as Rpc;
      expect(back.result!.content[0]!.text).to.equal('recovered');
    });
  });

  describe('a server whose command does not exist yet at start', () => {
    // the script appears in one step (written aside, then renamed), as an install would leave it
    const install = (dir: string): void => {
      writeFileSync(join(dir, 'later.tmp'), `#!/bin/sh\nexec "${node}" "${fixture('proxy-mini.mjs')}"\n`, { mode: 0o755 });
      renameSync(join(dir, 'later.tmp'), join(dir, 'later.sh'));
    };
    const notFound = (dir: string) =>
      `cannot start command "./later.sh": command not found: check mcpServers.later.command in ${dir}/test-config.json (is it installed and on PATH?); trying again in `;

    it('is failed with why, keeps being tried on the backoff, and comes up by itself once the command exists', async () => {
      const dir = join(folder, 'retried');
      mkdirSync(dir);
      const { sink, logged } = logSink();
      const gw = await startGateway(
        { later: { command: './later.sh', cwd: dir }, mini: mini() },
        {
          plugins: [transportStdio({ restartBaseMs: 20, restartMaxMs: 200 }), proxyJsonRpc(), transportSse()],
          waitForServers: false,
          kernel: { logger: undefined, logLevel: 'info', logDestination: sink },
        },
      );
      try {
        await until(async () => (await health(gw)).servers.later!.state === 'failed', 10_000, 'later to be failed');
        const h = await health(gw);
        expect({ status: h.status, failed: h.failed }).to.deep.equal({ status: 'degraded', failed: ['later'] });
        expect(h.servers.later!.lastError!.startsWith(notFound(repoRoot))).to.equal(true, h.servers.later!.lastError);
        const answer = (await postJson(gw.url('/later/mcp'), echo(1, 'x'))).json as Rpc;
        expect(answer.error!.code).to.equal(-32000);
        expect(answer.error!.message.startsWith(`Server "later" is unavailable: ${notFound(repoRoot)}`)).to.equal(true, answer.error!.message);
        // it is tried again: the delay doubles from 20 ms up to the 200 ms cap
        await until(async () => /trying again in 200 ms/.test((await health(gw)).servers.later!.lastError ?? ''), 10_000, 'the capped delay');
        // said once at error level, and each try again at info
        const errors = logged.filter((l) => l.level >= 50);
        expect(errors.map((l) => [l.server, l.msg])).to.deep.equal([['later', 'server is not ready; the gateway serves the others and keeps trying']]);
        expect(errors[0]!.error!.startsWith(`Server "later" is unavailable: ${notFound(repoRoot)}`)).to.equal(true, errors[0]!.error);
        expect(logged.filter((l) => l.level === 30 && l.msg === 'the server could not be started; trying again').length).to.be.at.least(3);
        install(dir);
        await until(async () => (await health(gw)).servers.later!.ready, 10_000, 'later to come up by itself');
        const back = await health(gw);
        expect(back.status).to.equal('ok');
        expect(back.servers.later!.state).to.equal('up');
        expect(back.servers.later!.processes).to.deep.equal([{ state: 'up', restarts: back.servers.later!.restarts }]);
        expect(((await postJson(gw.url('/later/mcp'), echo(2, 'came up'))).json as Rpc).result!.content[0]!.text).to.equal('came up');
      } finally {
        await gw.stop();
      }
    });

    it('leaves no failed process entry behind when a call starts it afresh', async () => {
      const dir = join(folder, 'fresh');
      mkdirSync(dir);
      // the transport's next try is a minute away: the call's fresh start is what brings it up
      const gw = await startGateway(
        { later: { command: './later.sh', cwd: dir } },
        { plugins: [transportStdio({ restartBaseMs: 60_000 }), proxyJsonRpc({ retryFailedAfterMs: 0 }), transportSse()], waitForServers: false },
      );
      try {
        await until(async () => (await health(gw)).servers.later!.state === 'failed', 10_000, 'later to be failed');
        expect((await health(gw)).servers.later!.processes).to.deep.equal([{ state: 'failed', restarts: 0 }]);
        install(dir);
        expect(((await postJson(gw.url('/later/mcp'), echo(3, 'fresh'))).json as Rpc).result!.content[0]!.text).to.equal('fresh');
        const h = await health(gw);
        expect(h.servers.later).to.include({ state: 'up', ready: true, instances: 1 });
        expect(h.servers.later!.processes).to.deep.equal([{ state: 'up', restarts: 0 }]);
      } finally {
        await gw.stop();
      }
    });
  });

  describe('servers that never complete the handshake', () => {
    type Failed = { status: string; failed?: string[]; servers: Record<string, { state: string; ready: boolean; lastError?: string }> };
    const failedIn = async (gw: TestGateway, name: string): Promise<Failed> => {
      let h: Failed | undefined;
      await until(async () => {
        h = (await health(gw)) as Failed;
        return h.servers[name]!.state === 'failed';
      }, 15_000, `${name} to be failed in /health`);
      return h!;
    };

    it('marks a stdio server that does not answer initialize failed, answers calls with why at once, and makes it up once it answers', async () => {
      const wake = join(folder, 'wake-mute');
      const { sink, logged } = logSink();
      const gw = await startGateway(
        { mute: { command: node, args: [fixture('start-sleeper.mjs')], env: { WAKE_FILE: wake, SLEEP_MS: '600000' } }, mini: mini() },
        { proxy: { handshakeTimeoutMs: 1000 }, waitForServers: false, kernel: { logger: undefined, logLevel: 'info', logDestination: sink } },
      );
      try {
        const h = await failedIn(gw, 'mute');
        // the first failed handshake is said once at error level, by the pool that started it (later retries log their own)
        const first = logged.filter((l) => l.level >= 50 && l.failures !== 2 && l.failures !== 3);
        expect(first.map((l) => l.msg)).to.deep.equal(['server is not ready; the gateway serves the others and keeps trying']);
        expect(first[0]!.error).to.match(/^Server "mute" did not answer the gateway's initialize within 1000 ms/);
        expect({ status: h.status, failed: h.failed }).to.deep.equal({ status: 'degraded', failed: ['mute'] });
        expect(h.servers.mute!.lastError).to.match(
          /^Server "mute" did not answer the gateway's initialize within 1000 ms; trying again in \d+(\.\d)? s \(check that it is an MCP server and that it starts within handshakeTimeoutMs\)$/,
        );
        const answer = (await postJson(gw.url('/mute/mcp'), echo(1, 'x'))).json as Rpc;
        expect(answer.id).to.equal(1);
        expect(answer.error!.code).to.equal(-32000);
        expect(answer.error!.message).to.match(/^Server "mute" did not answer the gateway's initialize within 1000 ms; trying again in/);
        // it keeps being tried: once it reads stdin it answers, and is up
        writeFileSync(wake, '');
        await until(async () => (await health(gw)).servers.mute!.ready, 15_000, 'mute to be up');
        const back = await health(gw);
        expect(back.status).to.equal('ok');
        expect(back.servers.mute).to.include({ state: 'up', ready: true });
        expect(((await postJson(gw.url('/mute/mcp'), echo(2, 'answered'))).json as Rpc).result!.content[0]!.text).to.equal('answered');
      } finally {
        await gw.stop();
      }
    });

    it('marks a url that is not an MCP endpoint (another gateway\'s /health) failed, with the refusal', async () => {
      const other = await startGateway({ mini: mini() });
      const gw = await startGateway({ notmcp: { url: other.url('/health') }, mini: mini() }, { proxy: { handshakeTimeoutMs: 2000 }, waitForServers: false });
      try {
        const h = await failedIn(gw, 'notmcp');
        expect({ status: h.status, failed: h.failed }).to.deep.equal({ status: 'degraded', failed: ['notmcp'] });
        expect(h.servers.notmcp!.lastError).to.match(/^Server "notmcp" refused initialize: Remote server "notmcp" \(http:\/\/127\.0\.0\.1:\d+\/health\): it speaks neither Streamable HTTP/);
        expect(h.servers.notmcp!.lastError).to.match(/; trying again in \d+(\.\d)? s \(check its url or command and that it is an MCP server\)$/);
      } finally {
        await gw.stop();
        await other.stop();
      }
    });

    it('marks a url that leads back to the gateway\'s own /{name}/mcp failed, and says so once', async () => {
      const port = await freePort();
      const gw = await startGateway({ self: { url: `http://127.0.0.1:${port}/self/mcp` } }, { kernel: { port }, proxy: { handshakeTimeoutMs: 1000 }, waitForServers: false });
      try {
        const h = await failedIn(gw, 'self');
        expect({ status: h.status, failed: h.failed }).to.deep.equal({ status: 'degraded', failed: ['self'] });
        expect(h.servers.self!.lastError).to.not.include('"self" it did');
        // after a retry or two the refusal is the server's own failure, said once
        await until(async () => /refused initialize: what answers/.test((await health(gw)).servers.self!.lastError ?? ''), 15_000, 'the loop to be named');
        expect((await health(gw)).servers.self!.lastError).to.match(
          /^Server "self" refused initialize: what answers it is a server named "self" that is unavailable itself \([^()]*(\(check[^()]*\))?[^()]*\); if its url points back at this gateway's \/self\/mcp, it can never start; trying again in \d+(\.\d)? s \(point its url at an MCP server\)$/,
        );
      } finally {
        await gw.stop();
      }
    });
  });
});
