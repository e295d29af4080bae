import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, FluidError, transportHttp, type JsonObject, type Kernel, type ServerDefinition, type ServerEntry, type Upstream } from '../../../index.js';
import type { RemoteUpstream } from '../../../plugins/transport-http/index.js';
import { repoRoot } from '../../helpers/paths.js';
import { freePort, killAll, ListenerLog, startEverything, startFixture } from './remote-servers.js';

const initialize = (id: number): JsonObject => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'transport-http-test', version: '1.0.0' } },
});
const initialized: JsonObject = { jsonrpc: '2.0', method: 'notifications/initialized' };

describe('transport-http: remote servers by URL (the http transport, driven directly)', function () {
  this.timeout(30_000);
  let kernel: Kernel;
  const upstreams: Upstream[] = [];

  before(async () => {
    // the kernel registers the plugin, so the factory and its pooled agent are the real ones
    kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) });
    kernel.use(transportHttp({ reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, endpointTimeoutMs: 5000 }));
    await kernel.start();
  });
  afterEach(async () => {
    await Promise.all(upstreams.splice(0).map((u) => u.stop()));
    await killAll();
  });
  after(() => kernel.stop());

  function create(entry: ServerEntry, env: Record<string, string> = {}): RemoteUpstream {
    const server: ServerDefinition = { name: 'remote', entry, source: `${repoRoot}/test-config.json`, dir: repoRoot, transport: 'http' };
    const factory = kernel.transports.get('http')!;
    expect(factory.claims(entry)).to.equal(true);
    factory.validate?.(server);
    const upstream = factory.create({ server, env, label: 'remote (test)', log: kernel.log }) as RemoteUpstream;
    upstreams.push(upstream);
    return upstream;
  }

  /** initialize, notifications/initialized and tools/list, as the proxy would after up() */
  async function handshake(upstream: Upstream, log: ListenerLog, firstId: number): Promise<JsonObject> {
    upstream.send(initialize(firstId));
    const init = await log.answer(firstId);
    expect(init.result, JSON.stringify(init)).to.be.an('object');
    upstream.send(initialized);
    upstream.send({ jsonrpc: '2.0', id: firstId + 1, method: 'tools/list' });
    return log.answer(firstId + 1);
  }

  it('does not claim entries with a command', () => {
    expect(kernel.transports.get('http')!.claims({ command: 'node' })).to.equal(false);
  });

  it('speaks Streamable HTTP to server-everything: answers, calls, and progress before the response', async () => {
    const remote = await startEverything('streamableHttp');
    const upstream = create({ url: remote.url });
    const log = new ListenerLog();
    await upstream.start(log);
    expect(log.events).to.deep.equal([{ kind: 'up' }]);
    expect(upstream.status.state).to.equal('up');

    const tools = await handshake(upstream, log, 1);
    expect(upstream.protocol).to.equal('streamable');
    const names = ((tools.result as { tools: { name: string }[] }).tools).map((t) => t.name);
    expect(names).to.include.members(['echo', 'trigger-long-running-operation']);

    upstream.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'over http' } } });
    expect(((await log.answer(3)).result as { content: unknown }).content).to.deep.equal([{ type: 'text', text: 'Echo: over http' }]);

    upstream.send({
      jsonrpc: '2.0',
      id: 4,
      method: 'tools/call',
      params: { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 }, _meta: { progressToken: 'p4' } },
    });
    await log.answer(4);
    const at = log.messages.findIndex((m) => m.id === 4);
    const progress = log.messages.slice(0, at).filter((m) => m.method === 'notifications/progress' && (m.params as JsonObject).progressToken === 'p4');
    expect(progress.map((m) => (m.params as JsonObject).progress)).to.deep.equal([1, 2, 3]);
  });

  it('falls back to HTTP+SSE for server-everything in sse mode', async () => {
    const remote = await startEverything('sse');
    const upstream = create({ url: remote.url });
    const log = new ListenerLog();
    await upstream.start(log);
    const tools = await handshake(upstream, log, 1);
    expect(upstream.protocol).to.equal('legacy');
    expect(((tools.result as { tools: { name: string }[] }).tools).map((t) => t.name)).to.include('echo');
    upstream.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'over sse' } } });
    expect(((await log.answer(3)).result as { content: unknown }).content).to.deep.equal([{ type: 'text', text: 'Echo: over sse' }]);
    expect(log.events).to.deep.equal([{ kind: 'up' }]);
  });

  it('reports a clear down (failed, naming the URL and the cause) when nothing listens, and comes up by itself once a server does', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const upstream = create({ url });
    const log = new ListenerLog();
    await upstream.start(log);
    expect(log.events).to.have.length(1);
    const down = log.events[0] as { kind: string; error: Error; willRetry: boolean };
    expect(down.kind).to.equal('down');
    expect(down.willRetry).to.equal(true);
    expect(down.error).to.be.instanceOf(FluidError);
    expect((down.error as FluidError).code).to.equal('FMCP_ERR_UPSTREAM_UNAVAILABLE');
    expect(down.error.message).to.include(url).and.to.include('ECONNREFUSED').and.to.include('mcpServers.remote.url');
    expect(upstream.status.state).to.equal('failed');
    // tried again in the background, as a stdio server is restarted: no call is needed to bring it back
    await startEverything('streamableHttp', port);
    await log.until(() => log.events.some((e) => e.kind === 'up'), 'the upstream to come up once the server listens', 20_000);
    expect(upstream.status.state).to.equal('up');
    await handshake(upstream, log, 1);
  });

  for (const mode of ['streamableHttp', 'sse'] as const) {
    it(`reports down, then up, when the ${mode} server is killed and restarted on the same port`, async () => {
      const first = await startEverything(mode);
      const upstream = create({ url: first.url });
      const log = new ListenerLog();
      await upstream.start(log);
      await handshake(upstream, log, 1);

      await first.kill();
      await log.until(() => log.events.some((e) => e.kind === 'down'), 'down');
      const down = log.events.find((e) => e.kind === 'down') as { error: Error; willRetry: boolean };
      expect(down.willRetry).to.equal(true);
      expect(down.error.message).to.include(first.url);
      expect(upstream.status.state).to.equal('down');

      await startEverything(mode, first.port);
      await log.until(() => log.events.filter((e) => e.kind === 'up').length === 2, 'up again');
      expect(log.events.map((e) => e.kind)).to.deep.equal(['up', 'down', 'up']);
      expect(upstream.status).to.include({ state: 'up', restarts: 1 });

      // the proxy redoes the handshake after up(): a new session that works
      const tools = await handshake(upstream, log, 10);
      expect(((tools.result as { tools: { name: string }[] }).tools).map((t) => t.name)).to.include('echo');
    });
  }

  describe('against a JSON-answering server (test/fixtures/sse-remote.mjs)', () => {
    it('sends the entry headers, with ${VAR} expanded, the session id and protocol version on every request', async () => {
      const remote = await startFixture();
      process.env.SSE_TEST_TEAM = 'blue';
      const upstream = create(
        { url: remote.url, headers: { Authorization: 'Bearer ${SSE_TEST_TOKEN}', 'X-Team': '${SSE_TEST_TEAM}' }, auth: { type: 'oauth2', flow: 'pkce', env_var_name: 'SSE_TEST_TOKEN' } },
        { SSE_TEST_TOKEN: 'caller-token' },
      );
      delete process.env.SSE_TEST_TEAM;
      const log = new ListenerLog();
      await upstream.start(log);
      await handshake(upstream, log, 1);
      upstream.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'whoami' } });
      expect(((await log.answer(3)).result as { content: { text: string }[] }).content[0]!.text).to.equal('auth=Bearer caller-token');

      // the GET stream is opened in the background after notifications/initialized
      let stats = await remote.stats();
      for (let i = 0; i < 100 && stats.gets === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        stats = await remote.stats();
      }
      // first the 2026-07-28 probe, which this 2025 server answers with an error, then the 2025 handshake
      expect(stats.seen.map((s) => s.method)).to.deep.equal(['server/discover', 'initialize', 'notifications/initialized', 'tools/list', 'tools/call']);
      expect(stats.seen[0]!.version).to.equal('2026-07-28');
      expect(stats.seen[0]!.session).to.equal(null);
      stats.seen.shift();
      for (const s of stats.seen) {
        expect(s.authorization).to.equal('Bearer caller-token');
        expect(s['x-team']).to.equal('blue');
        expect(s.accept).to.equal('application/json, text/event-stream');
      }
      expect(stats.seen[0]!.session).to.equal(null);
      const session = stats.seen[1]!.session;
      expect(session).to.be.a('string');
      expect(stats.seen.slice(1).every((s) => s.session === session && s.version === '2025-06-18')).to.equal(true);
      // the GET stream was tried once and its 405 tolerated
      expect(stats.gets).to.equal(1);
      expect(log.events).to.deep.equal([{ kind: 'up' }]);

      await upstream.stop();
      expect((await remote.stats()).deleted).to.deep.equal([session]);
      expect(log.events.map((e) => e.kind)).to.deep.equal(['up', 'down']);
      expect(upstream.status.state).to.equal('stopped');
      expect(() => upstream.send({ jsonrpc: '2.0', id: 9, method: 'tools/list' })).to.throw(/was stopped/);
    });

    it('answers a request the server refuses with HTTP 500 with a JSON-RPC error', async () => {
      const remote = await startFixture();
      const upstream = create({ url: remote.url });
      const log = new ListenerLog();
      await upstream.start(log);
      await handshake(upstream, log, 1);
      upstream.send({ jsonrpc: '2.0', id: 3, method: 'fail/http' });
      const answer = await log.answer(3);
      expect((answer.error as { message: string }).message).to.include('HTTP 500').and.to.include(remote.url);
      expect(upstream.status.state).to.equal('up');
    });

    it('reports down then up when the server forgets the session (404), so a new handshake happens', async () => {
      const remote = await startFixture();
      const upstream = create({ url: remote.url });
      const log = new ListenerLog();
      await upstream.start(log);
      await handshake(upstream, log, 1);
      await remote.forget();
      upstream.send({ jsonrpc: '2.0', id: 3, method: 'tools/list' });
      await log.until(() => log.events.length === 3, 'down and up');
      expect(log.events.map((e) => e.kind)).to.deep.equal(['up', 'down', 'up']);
      expect((log.events[1] as { willRetry: boolean }).willRetry).to.equal(true);
      const tools = await handshake(upstream, log, 10);
      expect(tools.result).to.be.an('object');
      expect((await remote.stats()).sessions).to.equal(1);
    });
  });
});

describe('transport-http: validating remote entries', () => {
  it('refuses to start when a header refers to a variable that is not set, naming the field', async () => {
    delete process.env.SSE_TEST_MISSING;
    const kernel = createKernel({
      port: 0,
      logger: pino({ level: 'silent' }),
      servers: [{ name: 'remote', entry: { url: 'http://127.0.0.1:9/mcp', headers: { Authorization: 'Bearer ${SSE_TEST_MISSING}' } }, source: '/tmp/config.json', dir: '/tmp', transport: '' }],
    });
    kernel.use(transportHttp());
    let error: unknown;
    await kernel.start().catch((err: unknown) => (error = err));
    expect((error as FluidError).code).to.equal('FMCP_ERR_CONFIG_INVALID');
    expect((error as Error).message).to.include('mcpServers.remote.headers.Authorization').and.to.include('SSE_TEST_MISSING');
    expect(kernel.state).to.equal('stopped');
  });

  it('accepts a variable given in the entry env', async () => {
    const kernel = createKernel({
      port: 0,
      logger: pino({ level: 'silent' }),
      servers: [{ name: 'remote', entry: { url: 'http://127.0.0.1:9/mcp', env: { KEY: 'k' }, headers: { 'X-Key': '${KEY}' } }, source: '/tmp/config.json', dir: '/tmp', transport: '' }],
    });
    kernel.use(transportHttp());
    await kernel.start();
    expect(kernel.servers.get('remote')!.transport).to.equal('http');
    await kernel.stop();
  });
});
