import { expect } from 'chai';
import { mkdtempSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors, FluidError, type JsonObject, type Logger, type ServerDefinition } from '../../../core/index.js';
import { stdioTransportFactory, type StdioOptions, type StdioUpstream } from '../../../plugins/transport-stdio/index.js';
import { trackedGroupCount } from '../../../plugins/transport-stdio/process-groups.js';
import { everythingServer, fixture, repoRoot } from '../../helpers/paths.js';
import { captureLogger, isAlive, Recorder, serverDef, waitUntil } from './recorder.js';

const node = process.execPath;

describe('transport-stdio: StdioUpstream', function () {
  let upstreams: StdioUpstream[] = [];
  let groupsBefore = 0;

  beforeEach(() => {
    groupsBefore = trackedGroupCount();
  });

  afterEach(async () => {
    await Promise.all(upstreams.map((u) => u.stop()));
    upstreams = [];
    expect(trackedGroupCount(), 'process groups left running').to.equal(groupsBefore);
  });

  function create(server: ServerDefinition, options: StdioOptions = {}, log?: Logger, env: Record<string, string> = {}): StdioUpstream {
    const upstream = stdioTransportFactory(options).create({ server, env, label: `${server.name}#shared`, log: log ?? captureLogger('info').log }) as StdioUpstream;
    upstreams.push(upstream);
    return upstream;
  }

  function lines(options: StdioOptions = {}, log?: Logger): StdioUpstream {
    return create(serverDef('lines', node, [fixture('stdio-lines.mjs')], repoRoot), options, log);
  }

  async function started(upstream: StdioUpstream): Promise<Recorder> {
    const rec = new Recorder();
    await upstream.start(rec);
    return rec;
  }

  const request = (id: number, method: string, params: JsonObject = {}): JsonObject => ({ jsonrpc: '2.0', id, method, params });

  it('talks to server-everything: initialize, tools/list, and get-env sees the entry and identity environment', async () => {
    const server = serverDef('everything', node, [everythingServer, 'stdio'], repoRoot, { FMCP_ENTRY_VAR: 'from-entry', FMCP_SHARED_VAR: 'from-entry' });
    const upstream = create(server, {}, undefined, { FMCP_SHARED_VAR: 'from-identity' });
    const rec = await started(upstream);
    expect(rec.events).to.deep.equal([{ kind: 'up' }]);
    expect(upstream.status.state).to.equal('up');
    expect(upstream.status.pid).to.be.a('number');

    upstream.send(request(1, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'stdio-test', version: '1.0.0' } }));
    const init = await rec.answer(1, 10_000);
    const result = init.result as { protocolVersion: string; serverInfo: { name: string } };
    expect(result.protocolVersion).to.equal('2025-06-18');
    expect(result.serverInfo.name).to.be.a('string').and.not.equal('');

    upstream.send('{"jsonrpc":"2.0","method":"notifications/initialized"}');
    upstream.send(JSON.stringify(request(2, 'tools/list')));
    const tools = ((await rec.answer(2)).result as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(tools).to.include.members(['echo', 'get-env']);

    upstream.send(request(3, 'tools/call', { name: 'get-env', arguments: {} }));
    const content = ((await rec.answer(3)).result as { content: { text: string }[] }).content;
    const env = JSON.parse(content[0]!.text) as Record<string, string>;
    expect(env.FMCP_ENTRY_VAR).to.equal('from-entry');
    expect(env.FMCP_SHARED_VAR).to.equal('from-identity');
    expect(env.PATH).to.equal(process.env.PATH);
  });

  it('runs the server in the package folder with entry env over the gateway env and identity env over both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fmcp-stdio-'));
    try {
      process.env.FMCP_STDIO_TEST_GATEWAY = 'gateway';
      const server = serverDef('lines', node, [fixture('stdio-lines.mjs')], dir, { FMCP_A: 'entry', FMCP_B: 'entry', FMCP_STDIO_TEST_GATEWAY: 'entry' });
      const upstream = create(server, {}, undefined, { FMCP_B: 'identity' });
      const rec = await started(upstream);
      upstream.send(request(1, 'env', { names: ['FMCP_A', 'FMCP_B', 'FMCP_STDIO_TEST_GATEWAY', 'HOME'] }));
      const result = (await rec.answer(1)).result as { cwd: string; env: Record<string, string | null> };
      expect(result.cwd).to.equal(realpathSync(dir));
      expect(result.env).to.deep.equal({ FMCP_A: 'entry', FMCP_B: 'identity', FMCP_STDIO_TEST_GATEWAY: 'entry', HOME: process.env.HOME ?? null });
    } finally {
      delete process.env.FMCP_STDIO_TEST_GATEWAY;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reassembles a line that arrives in pieces, cut inside multi-byte characters', async () => {
    const upstream = lines();
    const rec = await started(upstream);
    upstream.send(request(7, 'split'));
    const answer = await rec.answer(7);
    expect(answer).to.deep.equal({ jsonrpc: '2.0', id: 7, result: { text: 'héllo € 😀 wörld' } });
  });

  it('delivers many lines written in one chunk, in order', async () => {
    const upstream = lines();
    const rec = await started(upstream);
    upstream.send(request(1, 'many', { count: 2000 }));
    const answer = await rec.answer(1);
    expect(answer.result).to.deep.equal({ sent: 2000 });
    const order = rec.messages.filter((m) => m.method === 'notifications/message').map((m) => (m.params as { i: number }).i);
    expect(order).to.have.length(2000);
    expect(order.every((v, i) => v === i)).to.equal(true);
  });

  it('delivers a 10 MB line', async () => {
    const upstream = lines();
    const rec = await started(upstream);
    const bytes = 10 * 1024 * 1024;
    upstream.send(request(1, 'big', { bytes }));
    const data = ((await rec.answer(1, 15_000)).result as { data: string }).data;
    expect(data.length).to.equal(bytes);
    expect(/^x+$/.test(data)).to.equal(true);
    upstream.send(request(2, 'echo', { still: 'here' }));
    expect((await rec.answer(2)).result).to.deep.equal({ still: 'here' });
  });

  it('drops a line longer than maxLineBytes, logs it, and keeps reading', async () => {
    const { log, lines: logged } = captureLogger('info');
    const upstream = lines({ maxLineBytes: 1024 * 1024 }, log);
    const rec = await started(upstream);
    upstream.send(request(1, 'big', { bytes: 3 * 1024 * 1024 }));
    upstream.send(request(2, 'big', { bytes: 1000 }));
    const small = await rec.answer(2, 10_000);
    expect((small.result as { data: string }).data).to.have.length(1000);
    expect(rec.messages.some((m) => m.id === 1)).to.equal(false);
    const warning = logged.find((l) => typeof l.msg === 'string' && l.msg.includes('longer than the limit'));
    expect(warning, 'a warning about the long line').to.not.equal(undefined);
    expect(warning!.level).to.equal(40);
    expect(warning!.bytes).to.be.greaterThan(3 * 1024 * 1024);
    expect(warning!.upstream).to.equal('lines#shared');
    expect(upstream.status.state).to.equal('up');
  });

  it('skips lines that are not JSON objects with a warning and keeps going', async () => {
    const { log, lines: logged } = captureLogger('info');
    const upstream = lines({}, log);
    const rec = await started(upstream);
    upstream.send(request(1, 'garbage'));
    upstream.send(request(2, 'echo', { ok: true }));
    await rec.answer(2);
    expect(rec.messages).to.deep.equal([
      { jsonrpc: '2.0', id: 1, result: { after: 'garbage' } },
      { jsonrpc: '2.0', id: 2, result: { ok: true } },
    ]);
    const skipped = logged.filter((l) => l.level === 40 && typeof l.msg === 'string' && l.msg.startsWith('skipped a stdout line')).map((l) => l.line);
    expect(skipped).to.deep.equal(['this is not json', '42', '[1,2]', '{"unterminated": ']);
  });

  it('drains a noisy stderr so the server is never stalled, and logs stderr at debug level', async () => {
    const quiet = lines();
    const rec = await started(quiet);
    // 8 MB of stderr: more than a hundred full pipe buffers
    quiet.send(request(1, 'noisy', { bytes: 8 * 1024 * 1024 }));
    expect((await rec.answer(1, 15_000)).result).to.deep.equal({ noisy: 8 * 1024 * 1024 });

    const { log, lines: logged } = captureLogger('debug');
    const chatty = lines({}, log);
    const rec2 = await started(chatty);
    chatty.send(request(1, 'noisy', { bytes: 256 * 1024 }));
    await rec2.answer(1, 15_000);
    await waitUntil(() => logged.some((l) => l.stderr === `stdio-lines ready pid=${chatty.status.pid}`), 'the ready line in the log');
    const stderrLines = logged.filter((l) => l.stderr !== undefined);
    expect(stderrLines.every((l) => l.level === 20 && l.upstream === 'lines#shared')).to.equal(true);
    expect(stderrLines.length).to.be.greaterThan(1000);
  });

  it('reports a crash at once, restarts the server, and counts the restart', async () => {
    const upstream = lines({ restartBaseMs: 20 });
    const rec = await started(upstream);
    const firstPid = upstream.status.pid;
    upstream.send(request(1, 'exit', { code: 3 }));
    await rec.until(() => rec.events.length >= 3, 'down then up');
    expect(rec.messages.some((m) => m.id === 1), 'the answer written just before the crash').to.equal(true);
    const [, down, up] = rec.events;
    expect(down!.kind).to.equal('down');
    if (down!.kind !== 'down') return;
    expect(down.willRetry).to.equal(true);
    expect(FMCP_UNAVAILABLE(down.error)).to.equal(true);
    expect(down.error.message).to.include('Server "lines"').and.include('exited with code 3').and.include('exiting with 3 on request');
    expect(up).to.deep.equal({ kind: 'up' });
    expect(upstream.status).to.include({ state: 'up', restarts: 1 });
    expect(upstream.status.pid).to.be.a('number').and.not.equal(firstPid);
    expect(upstream.status.lastError).to.include('exited with code 3');
    upstream.send(request(2, 'echo', { after: 'restart' }));
    expect((await rec.answer(2)).result).to.deep.equal({ after: 'restart' });
  });

  it('counts a server that keeps crashing at start as failed, with a useful lastError, and keeps retrying it with capped backoff', async () => {
    const server = serverDef('broken', node, [fixture('stdio-crash-at-start.mjs')], repoRoot);
    const upstream = create(server, { restartBaseMs: 10, restartMaxMs: 40, maxFailedStarts: 3 });
    const rec = await started(upstream);
    await rec.until(() => upstream.status.state === 'failed', 'the failed state');
    expect(rec.downs().map((d) => d.willRetry)).to.deep.equal([true, true, true]);
    expect(upstream.status.pid).to.equal(undefined);
    expect(upstream.status.lastError).to.match(/^exited with code 1 3 times in a row within 10000 ms of starting; trying again in 40 ms \(fix the server or mcpServers\.broken in .+: it comes back by itself\); last stderr: starting stdio-crash-at-start \| fatal: FAKE_API_KEY is not set$/);
    expect(rec.downs()[2]!.error.message).to.include('Server "broken" is unavailable').and.include('FAKE_API_KEY');
    expect(() => upstream.send(request(1, 'echo'))).to.throw(FluidError).with.property('code', 'FMCP_ERR_UPSTREAM_UNAVAILABLE');
    // still tried after it counts as failed, every 40 ms at most
    await rec.until(() => upstream.status.restarts >= 5, 'two more tries after the failed state');
    expect(rec.downs().every((d) => d.willRetry)).to.equal(true);
  });

  it('resets the backoff after a run that stayed up, and still counts quick failures as failed', async () => {
    // stableAfterMs well above a node start on a loaded machine: a run that exits at once must never count as stable
    const upstream = lines({ restartBaseMs: 10, maxFailedStarts: 2, stableAfterMs: 3000 });
    const rec = await started(upstream);
    for (let round = 1; round <= 2; round++) {
      // staying up past stableAfterMs is the subject here: this wait is the run's uptime
      await new Promise((r) => setTimeout(r, 3100));
      upstream.send(request(round, 'exit', { code: 0 }));
      await rec.until(() => upstream.status.restarts === round && upstream.status.state === 'up', `restart ${round}`);
    }
    expect(rec.downs().map((d) => d.willRetry)).to.deep.equal([true, true]);
    // two quick exits in a row count as failed; under load a run may outlive stableAfterMs, so keep going until two are quick
    for (let id = 10; id < 20 && !(upstream.status.lastError ?? '').includes('exited with code 4 2 times in a row'); id++) {
      const restarts = upstream.status.restarts;
      upstream.send(request(id, 'exit', { code: 4 }));
      await rec.until(() => upstream.status.restarts > restarts && upstream.status.state === 'up', `restart after exit ${id}`);
    }
    expect(upstream.status.lastError).to.include('exited with code 4 2 times in a row');
  });

  it('reports a command that does not exist as failed with a clear error, and keeps trying it', async () => {
    const upstream = create(serverDef('ghost', 'fluidmcp-no-such-command-4711', ['--stdio'], repoRoot), { restartBaseMs: 10, restartMaxMs: 40 });
    const rec = new Recorder();
    await upstream.start(rec);
    const reason = 'cannot start command "fluidmcp-no-such-command-4711": command not found: check mcpServers.ghost.command in /packages/test/ghost/metadata.json (is it installed and on PATH?)';
    expect(rec.events).to.have.length(1);
    const down = rec.downs()[0]!;
    expect(down.willRetry).to.equal(true);
    expect(down.error).to.be.instanceOf(FluidError).with.property('code', 'FMCP_ERR_UPSTREAM_UNAVAILABLE');
    expect(down.error.message).to.equal(`Server "ghost" is unavailable: ${reason}; trying again in 10 ms (it starts by itself once it can)`);
    expect(upstream.status.state).to.equal('failed');
    // tried again with the backoff, and the listener is not told the same again
    await waitUntil(() => upstream.status.lastError === `${reason}; trying again in 40 ms (it starts by itself once it can)`, 'the capped delay');
    expect(upstream.status.state).to.equal('failed');
    expect(rec.events).to.have.length(1);
  });

  it('starts a command that appears after a failed start, by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fmcp-stdio-later-'));
    try {
      const upstream = create(serverDef('later', './later.sh', [], dir), { restartBaseMs: 10, restartMaxMs: 40 });
      const rec = new Recorder();
      await upstream.start(rec);
      expect(upstream.status.state).to.equal('failed');
      writeFileSync(join(dir, 'later.tmp'), `#!/bin/sh\nexec "${node}" "${fixture('stdio-lines.mjs')}"\n`, { mode: 0o755 });
      renameSync(join(dir, 'later.tmp'), join(dir, 'later.sh'));
      await rec.until(() => rec.events.some((e) => e.kind === 'up'), 'the server to start');
      expect(upstream.status.state).to.equal('up');
      expect(rec.events.map((e) => e.kind)).to.deep.equal(['down', 'up']);
      upstream.send(request(1, 'echo', { text: 'hi' }));
      expect((await rec.answer(1)).result).to.deep.equal({ text: 'hi' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a working folder that does not exist as failed, naming the folder', async () => {
    const upstream = create(serverDef('nowhere', node, [fixture('stdio-lines.mjs')], join(tmpdir(), 'fmcp-no-such-folder-4711')), { restartBaseMs: 60_000 });
    const rec = new Recorder();
    await upstream.start(rec);
    const err = rec.downs()[0]!.error as FluidError;
    expect(err.code).to.equal('FMCP_ERR_UPSTREAM_UNAVAILABLE');
    expect(err.message).to.include('fmcp-no-such-folder-4711 does not exist').and.include('mcpServers.nowhere.cwd');
  });

  it('stop() ends a server and its grandchild that both ignore stdin closing and SIGTERM', async () => {
    const { log, lines: logged } = captureLogger('info');
    const upstream = create(serverDef('stubborn', node, [fixture('stdio-stubborn.mjs')], repoRoot), { stopGraceMs: 200 }, log);
    const rec = await started(upstream);
    await rec.until(() => rec.messages.some((m) => m.method === 'pids'), 'the pids notice');
    const { pid, grandchild } = rec.messages.find((m) => m.method === 'pids')!.params as { pid: number; grandchild: number };
    expect(pid).to.equal(upstream.status.pid);
    expect(isAlive(pid)).to.equal(true);
    expect(isAlive(grandchild)).to.equal(true);
    await upstream.stop();
    await waitUntil(() => !isAlive(grandchild), 'the grandchild to be gone', 2000);
    expect(isAlive(pid)).to.equal(false);
    expect(() => process.kill(pid, 0)).to.throw();
    expect(upstream.status.state).to.equal('stopped');
    expect(logged.some((l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes('sending SIGKILL'))).to.equal(true);
  });

  it('stop() is idempotent, tells the listener once, and send() then throws', async () => {
    const upstream = lines();
    expect(() => upstream.send(request(1, 'echo'))).to.throw(FluidError).with.property('code', 'FMCP_ERR_UPSTREAM_UNAVAILABLE');
    const rec = await started(upstream);
    const pid = upstream.status.pid!;
    const first = upstream.stop();
    expect(upstream.stop()).to.equal(first);
    await first;
    await upstream.stop();
    expect(isAlive(pid)).to.equal(false);
    expect(upstream.status).to.deep.equal({ state: 'stopped', restarts: 0 });
    expect(rec.events.map((e) => e.kind)).to.deep.equal(['up', 'down']);
    const down = rec.downs()[0]!;
    expect(down.willRetry).to.equal(false);
    expect(down.error.message).to.equal('Server "lines" is unavailable: it was stopped');
    expect(() => upstream.send(request(2, 'echo'))).to.throw('it was stopped');
    const again = await upstream.start(new Recorder()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(again).to.be.instanceOf(Error);
  });

  it('stop() during a restart wait cancels the restart', async () => {
    const upstream = lines({ restartBaseMs: 5000 });
    const rec = await started(upstream);
    upstream.send(request(1, 'exit', { code: 2 }));
    await rec.until(() => rec.downs().length === 1, 'the crash');
    expect(upstream.status.state).to.equal('down');
    await upstream.stop();
    expect(upstream.status.state).to.equal('stopped');
    expect(rec.downs().map((d) => d.willRetry)).to.deep.equal([true, false]);
  });

  it('survives writing to a server that closed its stdin', async () => {
    const { log, lines: logged } = captureLogger('info');
    const upstream = lines({}, log);
    const rec = await started(upstream);
    upstream.send(request(1, 'close-stdin'));
    await rec.answer(1);
    await waitUntil(() => {
      try {
        upstream.send(request(2, 'echo', { pad: 'y'.repeat(100_000) }));
      } catch {
        // not expected: the process is still up
      }
      return logged.some((l) => typeof l.msg === 'string' && l.msg.includes("cannot write to the server's stdin"));
    }, 'the stdin error to be logged');
    expect(upstream.status.state).to.equal('up');
  });
});

function FMCP_UNAVAILABLE(err: Error): boolean {
  return errors.FMCP_ERR_UPSTREAM_UNAVAILABLE.is(err);
}
