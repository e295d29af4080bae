import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Writable } from 'node:stream';
import { apiKeyAuth } from '../../../examples/plugins/api-key/index.js';
import { proxyJsonRpc, transportSse, transportStdio, webConsole } from '../../../index.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { request, until, type Answer } from '../../helpers/request.js';
import { openSse, type SseReading } from '../transport-sse/sse-reader.js';
import { SseReader } from './sse.js';

const ADMIN = 'admin-token-0123456789abcdef';
const CHANGE = { 'x-fluidmcp-console': '1', 'content-type': 'application/json' };

interface Summary {
  name: string;
  transport: string;
  auth: string | null;
  state: string;
  sessions: number;
  inFlight: number;
  restarts: number;
  upSince?: number;
  instances: { id: string; state: string; pid?: number }[];
}

const portOf = (g: TestGateway): number => g.kernel.address().port;
const get = (g: TestGateway, path: string, headers: Record<string, string> = {}): Promise<Answer> => request(portOf(g), { path, headers });
const post = (g: TestGateway, path: string, body: unknown, headers: Record<string, string> = CHANGE): Promise<Answer> =>
  request(portOf(g), { method: 'POST', path, headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('console: the /api routes', function () {
  this.timeout(60_000);
  let gateway: TestGateway;
  const logLines: string[] = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString('utf8'));
        done();
      },
    });
    gateway = await startGateway(
      {
        everything: { ...everythingEntry(), env: { DEMO_SECRET: 'secret-value-never-shown' } },
        keyed: { ...everythingEntry(), auth: { type: 'api_key', keys_env: 'CONSOLE_TEST_KEYS' } },
      },
      {
        plugins: [transportStdio(), proxyJsonRpc(), transportSse(), apiKeyAuth({ env: { CONSOLE_TEST_KEYS: 'alice:alice-key-0123456789abcdef' } }), webConsole()],
        kernel: { logger: undefined, logLevel: 'info', logDestination: sink, allowedHosts: ['gateway.example'] },
      },
    );
  });
  after(() => gateway?.stop());

  it('GET /api/servers lists each server with its state, processes and counts', async () => {
    const res = await get(gateway, '/api/servers');
    expect(res.status).to.equal(200);
    expect(res.headers['cache-control']).to.equal('no-store');
    const { servers } = res.json<{ servers: Summary[] }>();
    expect(servers.map((s) => [s.name, s.transport, s.auth, s.state])).to.deep.equal([
      ['everything', 'stdio', null, 'up'],
      ['keyed', 'stdio', 'api_key', 'on demand'],
    ]);
    const everything = servers[0]!;
    expect(everything.instances).to.have.length(1);
    expect(everything.instances[0]!.id).to.equal('shared');
    expect(everything.instances[0]!.pid).to.be.a('number');
    expect(everything.upSince).to.be.a('number');
    expect([everything.sessions, everything.inFlight, everything.restarts]).to.deep.equal([0, 0, 0]);
    expect(res.text).not.to.include('secret-value-never-shown');
  });

  it('GET /api/servers/{name} shows the config by names only: env names, never their values', async () => {
    const res = await get(gateway, '/api/servers/everything');
    expect(res.status).to.equal(200);
    const body = res.json<Summary & { config: Record<string, unknown> }>();
    expect(body.name).to.equal('everything');
    expect(body.config.envNames).to.deep.equal(['DEMO_SECRET']);
    expect(body.config.command).to.equal(process.execPath);
    expect(body.config.isolation).to.equal('shared');
    expect(res.text).not.to.include('secret-value-never-shown');
    const keyed = (await get(gateway, '/api/servers/keyed')).json<{ config: { auth: unknown } }>();
    expect(keyed.config.auth).to.deep.equal({ type: 'api_key' });
  });

  it('an unknown server is 404 FMCP_ERR_UNKNOWN_SERVER on every route', async () => {
    for (const res of [
      await get(gateway, '/api/servers/nope'),
      await get(gateway, '/api/servers/nope/tools'),
      await post(gateway, '/api/servers/nope/tools/echo', {}),
      await post(gateway, '/api/servers/nope/restart', {}),
    ]) {
      expect(res.status).to.equal(404);
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_UNKNOWN_SERVER', message: 'Unknown package "nope": this gateway serves "everything", "keyed"' } });
    }
  });

  it('GET tools, resources and prompts come from the server through the gateway', async () => {
    const tools = (await get(gateway, '/api/servers/everything/tools')).json<{ tools: { name: string; inputSchema: { properties: Record<string, unknown> } }[]; supported: boolean }>();
    const echo = tools.tools.find((t) => t.name === 'echo');
    expect(echo, 'echo tool').to.not.equal(undefined);
    expect(Object.keys(echo!.inputSchema.properties)).to.deep.equal(['message']);
    const resources = await get(gateway, '/api/servers/everything/resources');
    expect(resources.status).to.equal(200);
    expect(resources.json<{ resources: unknown[] }>().resources.length).to.be.greaterThan(0);
    const prompts = await get(gateway, '/api/servers/everything/prompts');
    expect(prompts.json<{ prompts: { name: string }[] }>().prompts.map((p) => p.name)).to.include('simple-prompt');
  });

  it('POST /api/servers/{name}/tools/{tool} calls the tool with the body as its arguments', async () => {
    const res = await post(gateway, '/api/servers/everything/tools/echo', { message: 'from the console' });
    expect(res.status).to.equal(200);
    expect(res.json()).to.deep.equal({ content: [{ type: 'text', text: 'Echo: from the console' }] });
  });

  it('a tool call with a body that is not a JSON object is 400', async () => {
    const bad = await post(gateway, '/api/servers/everything/tools/echo', '{nope');
    expect(bad.status).to.equal(400);
    expect(bad.json<{ error: { message: string } }>().error.message).to.equal('The body is not valid JSON: send the arguments of "echo" as a JSON object, such as {"message": "hi"}');
    const array = await post(gateway, '/api/servers/everything/tools/echo', [1]);
    expect(array.status).to.equal(400);
    expect(array.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_BAD_REQUEST');
  });

  it('a tool the server refuses gives its error as the server gave it', async () => {
    const res = await post(gateway, '/api/servers/everything/tools/no-such-tool', {});
    expect(res.status).to.equal(200);
    expect(res.json()).to.deep.equal({ content: [{ type: 'text', text: 'MCP error -32602: Tool no-such-tool not found' }], isError: true });
  });

  it('answers no other origin, not even a loopback one: a local page cannot read the log or the servers', async () => {
    for (const path of ['/api/servers', '/api/servers/everything/tools']) {
      const otherPort = await get(gateway, path, { origin: 'http://localhost:5173' });
      expect(otherPort.status, path).to.equal(403);
      expect(otherPort.json<{ error: { message: string } }>().error.message).to.equal('Console API calls must come from the console\'s own origin, not "http://localhost:5173"');
      const sameSite = await get(gateway, path, { 'sec-fetch-site': 'same-site' });
      expect(sameSite.status, path).to.equal(403);
    }
    const own = await get(gateway, '/api/servers', { origin: `http://127.0.0.1:${portOf(gateway)}`, 'sec-fetch-site': 'same-origin' });
    expect(own.status).to.equal(200);
  });

  it('state changes need the console header, and the same origin', async () => {
    const noHeader = await post(gateway, '/api/servers/everything/tools/echo', { message: 'x' }, { 'content-type': 'application/json' });
    expect(noHeader.status).to.equal(403);
    expect(noHeader.json()).to.deep.equal({
      error: { code: 'FMCP_ERR_FORBIDDEN', message: 'State-changing console calls need the header "x-fluidmcp-console: 1" (it keeps other sites from sending them)' },
    });
    const otherOrigin = await post(gateway, '/api/servers/everything/restart', {}, { ...CHANGE, origin: 'http://localhost:1' });
    expect(otherOrigin.status).to.equal(403);
    expect(otherOrigin.json<{ error: { message: string } }>().error.message).to.equal('Console API calls must come from the console\'s own origin, not "http://localhost:1"');
    const crossSite = await post(gateway, '/api/servers/everything/restart', {}, { ...CHANGE, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).to.equal(403);
    const sameOrigin = await post(gateway, '/api/servers/everything/tools/echo', { message: 'same' }, { ...CHANGE, origin: `http://127.0.0.1:${portOf(gateway)}`, 'sec-fetch-site': 'same-origin' });
    expect(sameOrigin.status).to.equal(200);
  });

  it('a server with auth: 401 without its credentials, and a call with them in X-Server-Authorization', async () => {
    const none = await get(gateway, '/api/servers/keyed/tools');
    expect(none.status).to.equal(401);
    expect(none.headers['www-authenticate']).to.equal(undefined);
    expect(none.json<{ error: { code: string; message: string } }>().error.message).to.match(/needs an API key.*X-Server-Authorization: Bearer <access_token>/);
    const call = await post(gateway, '/api/servers/keyed/tools/echo', { message: 'keyed' }, { ...CHANGE, 'x-server-authorization': 'Bearer alice-key-0123456789abcdef' });
    expect(call.status).to.equal(200);
    expect(call.json()).to.deep.equal({ content: [{ type: 'text', text: 'Echo: keyed' }] });
    const servers = (await get(gateway, '/api/servers')).json<{ servers: Summary[] }>().servers;
    const keyed = servers.find((s) => s.name === 'keyed')!;
    expect(keyed.instances).to.have.length(1);
    expect(keyed.instances[0]!.id).to.match(/^[0-9a-f]{12}$/);
    expect(JSON.stringify(servers)).not.to.include('alice-key-0123456789abcdef');
  });

  it('POST /api/servers/{name}/instances/{id}/stop stops one per-caller process; an unknown id is 404', async () => {
    const keyed = (await get(gateway, '/api/servers/keyed')).json<Summary>();
    const id = keyed.instances[0]!.id;
    const stopped = await post(gateway, `/api/servers/keyed/instances/${id}/stop`, {});
    expect(stopped.status).to.equal(200);
    expect(stopped.json()).to.deep.equal({ server: 'keyed', instance: id, stopped: true });
    expect((await get(gateway, '/api/servers/keyed')).json<Summary>().instances).to.deep.equal([]);
    const again = await post(gateway, `/api/servers/keyed/instances/${id}/stop`, {});
    expect(again.status).to.equal(404);
    expect(again.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_NOT_FOUND');
  });

  it('GET /api/events sends the servers, then each change as it happens, and activity while calls run', async () => {
    const sse = new SseReader(portOf(gateway), '/api/events');
    try {
      expect(await sse.status()).to.equal(200);
      expect(sse.headers!['content-type']).to.equal('text/event-stream');
      const first = await sse.next(() => true, 10_000, 'the first event');
      expect(first.event).to.equal('servers');
      const before = (JSON.parse(first.data) as { servers: Summary[] }).servers.find((s) => s.name === 'everything')!;
      const oldPid = before.instances[0]!.pid;
      const mark = sse.events.length;
      const restarted = await post(gateway, '/api/servers/everything/restart', {});
      expect(restarted.status).to.equal(200);
      expect(restarted.json()).to.deep.equal({ server: 'everything', restarted: true, stopped: 1, state: 'up' });
      const isEverything = (state: string) => (e: { event: string; data: string }) =>
        e.event === 'server' && (JSON.parse(e.data) as Summary).name === 'everything' && (JSON.parse(e.data) as Summary).state === state;
      await sse.next(isEverything('stopped'), 10_000, 'everything stopped', mark);
      const up = await sse.next(isEverything('up'), 10_000, 'everything up again', mark);
      expect((JSON.parse(up.data) as Summary).instances[0]!.pid).to.not.equal(oldPid);
      await post(gateway, '/api/servers/everything/tools/echo', { message: 'counted' });
      const activity = await sse.next((e) => e.event === 'activity', 10_000, 'an activity event', mark);
      const data = JSON.parse(activity.data) as { servers: Record<string, { calls: number; errors: number }> };
      expect(data.servers.everything!.calls).to.be.greaterThan(0);
      expect(data.servers.everything!.errors).to.equal(0);
    } finally {
      sse.close();
    }
  });

  it('GET /api/logs sends the log tail as written (redacted), then new lines', async () => {
    gateway.kernel.log.info({ server: 'everything', access_token: 'leaky-token-value' }, 'console log test line');
    const sse = new SseReader(portOf(gateway), '/api/logs');
    try {
      const line = await sse.next((e) => e.event === 'log' && e.data.includes('console log test line'), 10_000, 'the test line');
      const parsed = JSON.parse(line.data) as Record<string, unknown>;
      expect(parsed.access_token).to.equal('[redacted]');
      expect(line.data).not.to.include('leaky-token-value');
      expect(logLines.some((l) => l.includes('console log test line'))).to.equal(true);
      gateway.kernel.log.warn('a later line');
      await sse.next((e) => e.event === 'log' && e.data.includes('a later line'), 10_000, 'a live line');
      // below debug level the log leaves out servers' stderr; the tail shows it, in the log's shape
      expect(logLines.some((l) => l.includes('server stderr'))).to.equal(false);
      await post(gateway, '/api/servers/everything/restart', {});
      const stderr = await sse.next((e) => e.event === 'log' && e.data.includes('Starting default') && e.data.includes('"server":"everything"'), 10_000, 'a stderr line of everything');
      expect(JSON.parse(stderr.data)).to.deep.include({ level: 30, server: 'everything', upstream: 'everything', stderr: 'Starting default (STDIO) server...', msg: 'server stderr' });
    } finally {
      sse.close();
    }
  });

  it('without --admin-token, a non-loopback Host is 403 for the page and the API', async () => {
    for (const path of ['/', '/api/servers']) {
      const res = await get(gateway, path, { host: 'gateway.example' });
      expect(res.status).to.equal(403);
      expect(res.json<{ error: { message: string } }>().error.message).to.match(/^The console answers only on loopback/);
    }
  });

  it('GET / is the page with a strict CSP; its scripts and the bundled libraries are served by the gateway', async () => {
    const page = await get(gateway, '/');
    expect(page.status).to.equal(200);
    expect(page.headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).to.match(/^default-src 'none'; script-src 'self' 'sha256-[A-Za-z0-9+/=]+'; /);
    expect(page.text).to.include('<script type="importmap">');
    for (const path of ['/console/app.js', '/console/vendor/preact.js', '/console/vendor/preact-hooks.js', '/console/vendor/htm.js', '/console/vendor/uplot.js']) {
      const res = await get(gateway, path);
      expect(res.status, path).to.equal(200);
      expect(res.headers['content-type'], path).to.equal('text/javascript');
    }
  });
});

describe('console: --admin-token', function () {
  this.timeout(60_000);
  let gateway: TestGateway;

  before(async () => {
    gateway = await startGateway(
      { everything: everythingEntry() },
      { plugins: [transportStdio(), proxyJsonRpc(), webConsole({ adminToken: ADMIN })], kernel: { allowedHosts: ['gateway.example'] } },
    );
  });
  after(() => gateway?.stop());

  const remote = { host: 'gateway.example' };

  it('/api without the token is 401 with a Bearer challenge, also on a non-loopback Host', async () => {
    for (const headers of [remote, {}, { ...remote, authorization: 'Bearer wrong-token-wrong-token' }]) {
      const res = await get(gateway, '/api/servers', headers);
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal('Bearer realm="fluidmcp-console"');
      expect(res.json()).to.deep.equal({
        error: { code: 'FMCP_ERR_UNAUTHORIZED', message: 'The console API needs the admin token: send "Authorization: Bearer <admin token>", or sign in on the console page' },
      });
    }
  });

  it('with the token as Bearer, /api answers on a non-loopback Host', async () => {
    const res = await get(gateway, '/api/servers', { ...remote, authorization: `Bearer ${ADMIN}` });
    expect(res.status).to.equal(200);
    expect(res.json<{ servers: Summary[] }>().servers.map((s) => s.name)).to.deep.equal(['everything']);
  });

  it('the page loads anywhere (it shows the login form); login sets an HttpOnly SameSite=Strict cookie that opens /api', async () => {
    expect((await get(gateway, '/', remote)).status).to.equal(200);
    const wrong = await post(gateway, '/api/login', { token: 'not-the-admin-token' }, { ...CHANGE, ...remote });
    expect(wrong.status).to.equal(401);
    expect(wrong.headers['set-cookie']).to.equal(undefined);
    const noHeader = await post(gateway, '/api/login', { token: ADMIN }, { 'content-type': 'application/json', ...remote });
    expect(noHeader.status).to.equal(403);
    const login = await post(gateway, '/api/login', { token: ADMIN }, { ...CHANGE, ...remote });
    expect(login.status).to.equal(200);
    const cookie = login.headers['set-cookie']![0]!;
    expect(cookie).to.match(/^fmcp_console=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    expect(cookie).not.to.include(ADMIN);
    const session = await get(gateway, '/api/session', { ...remote, cookie: cookie.split(';')[0]! });
    expect(session.status).to.equal(200);
    expect(session.json()).to.deep.equal({ signedIn: true, tokenRequired: true });
    const logout = await post(gateway, '/api/logout', {}, { ...CHANGE, ...remote });
    expect(logout.headers['set-cookie']![0]).to.match(/^fmcp_console=; .*Max-Age=0$/);
  });

  it('a short admin token is refused when the plugin is made', () => {
    expect(() => webConsole({ adminToken: 'short' })).to.throw(/at least 16 characters/);
  });
});

describe('console: a server that cannot start', function () {
  this.timeout(60_000);
  let gateway: TestGateway;

  before(async () => {
    gateway = await startGateway(
      { broken: { command: process.execPath, args: [fixture('stdio-crash-at-start.mjs')] } },
      { plugins: [transportStdio(), proxyJsonRpc(), webConsole()], proxy: { retryFailedAfterMs: 60_000 } },
    );
  });
  after(() => gateway?.stop());

  it('shows it failed with the last error in words, and a call is 502 with the JSON-RPC error', async () => {
    let summary: Summary & { lastError?: string } = (await get(gateway, '/api/servers/broken')).json();
    const deadline = Date.now() + 20_000;
    while (summary.state !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      summary = (await get(gateway, '/api/servers/broken')).json();
    }
    expect(summary.state).to.equal('failed');
    expect(summary.lastError).to.include('fatal: FAKE_API_KEY is not set');
    const res = await post(gateway, '/api/servers/broken/tools/echo', { message: 'x' });
    expect(res.status).to.equal(502);
    const body = res.json<{ error: { code: string; message: string; rpc: { code: number; message: string } } }>();
    expect(body.error.code).to.equal('FMCP_ERR_UPSTREAM');
    expect(body.error.rpc.message).to.include('fatal: FAKE_API_KEY is not set');
    // the server's name once: the gateway's own error already starts with it
    expect(body.error.rpc.message).to.match(/^Server "broken" is unavailable: /);
    expect(body.error.message).to.equal(`${body.error.rpc.message} (JSON-RPC error -32000)`);
    const tools = await get(gateway, '/api/servers/broken/tools');
    expect(tools.status).to.equal(502);
  });
});

describe('console: sessions of both transports (Streamable HTTP and legacy HTTP+SSE)', function () {
  this.timeout(60_000);
  let gateway: TestGateway;
  const clients: Client[] = [];
  let waiting: SseReading | undefined;

  before(async () => {
    gateway = await startGateway({ everything: everythingEntry() }, { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), webConsole()] });
  });
  after(async () => {
    waiting?.close();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await gateway?.stop();
  });

  /** sessions in /health and in the console's summary, with the console's count by transport */
  async function counts(): Promise<{ health: number; console: number; byTransport: unknown }> {
    const health = (await get(gateway, '/health')).json<{ servers: { everything: { sessions: number } } }>();
    const summary = (await get(gateway, '/api/servers/everything')).json<Summary & { sessionTransports: unknown }>();
    return { health: health.servers.everything.sessions, console: summary.sessions, byTransport: summary.sessionTransports };
  }

  it('counts every initialized legacy SSE stream as a session, says which transport each is, and drops it when its stream closes', async () => {
    for (let i = 0; i < 5; i++) {
      const client = new Client({ name: `legacy-${i}`, version: '1.0.0' });
      await client.connect(new SSEClientTransport(new URL(gateway.url('/everything/sse'))));
      clients.push(client);
    }
    const modern = new Client({ name: 'streamable', version: '1.0.0' });
    await modern.connect(new StreamableHTTPClientTransport(new URL(gateway.url('/everything/mcp'))));
    clients.push(modern);
    // each legacy session serves calls: it is a real session, not a stream alone
    const echoed = await clients[0]!.callTool({ name: 'echo', arguments: { message: 'over sse' } });
    expect((echoed.content as { text: string }[])[0]!.text).to.equal('Echo: over sse');
    // a stream that never sent initialize holds a place under the limit, but is no session yet
    waiting = await openSse(portOf(gateway), '/everything/sse');
    expect(waiting.status).to.equal(200);

    expect(await counts()).to.deep.equal({ health: 6, console: 6, byTransport: { 'streamable-http': 1, sse: 5, channel: 0 } });

    await clients[1]!.close();
    await clients[2]!.close();
    const after = await until(async () => {
      const now = await counts();
      return now.console === 4 ? now : undefined;
    }, 10_000, 'two closed legacy sessions leaving the count');
    expect(after).to.deep.equal({ health: 4, console: 4, byTransport: { 'streamable-http': 1, sse: 3, channel: 0 } });
  });
});

