import { expect } from 'chai';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { definePlugin, errors, proxyJsonRpc, transportSse, transportStdio, type ServerEntry } from '../../../index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { modernPost } from '../../helpers/modern.js';
import { until } from '../../helpers/request.js';

/** A server that answers `count` with "<pid>:<calls so far>": its state lives in its process. */
const counter = (extra: Partial<ServerEntry> = {}): ServerEntry => ({ command: process.execPath, args: [fixture('pid-counter.mjs')], ...extra });
const isolated = (): ServerEntry => counter({ isolation: 'session' });

const VERSION = '2025-11-25';
const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'limit-test', version: '1' } } };
const countCall = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'count', arguments: {} } };
type Rpc = { result?: { content: { text: string }[] }; error?: { code: number; message: string; data?: unknown } };

/** A session opened with plain POSTs (no GET stream): its id. */
async function openRaw(gw: TestGateway): Promise<string> {
  const res = await postJson(gw.url('/counter/mcp'), initialize);
  expect(res.status, res.text).to.equal(200);
  const id = res.headers.get('mcp-session-id')!;
  const ack = await postJson(gw.url('/counter/mcp'), { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id, 'mcp-protocol-version': VERSION });
  expect(ack.status).to.equal(202);
  return id;
}

/** `count` on a raw session: "<pid>:<n>", or the HTTP status and body when it is refused. */
async function countRaw(gw: TestGateway, session: string): Promise<string> {
  const res = await postJson(gw.url('/counter/mcp'), countCall, { 'mcp-session-id': session, 'mcp-protocol-version': VERSION });
  return res.status === 200 && (res.json as Rpc).result ? (res.json as Rpc).result!.content[0]!.text : `${res.status} ${res.text}`;
}

async function sdkClient(gw: TestGateway): Promise<Client> {
  const client = new Client({ name: 'limit-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(gw.url('/counter/mcp'))));
  return client;
}

const countSdk = async (client: Client): Promise<string> => ((await client.callTool({ name: 'count', arguments: {} })) as { content: { text: string }[] }).content[0]!.text;
const pidOf = (answer: string): string => answer.split(':')[0]!;

describe('proxy-jsonrpc: maxInstances never swaps out a process in use', function () {
  this.timeout(60_000);
  const gateways: TestGateway[] = [];
  const clients: Client[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
  });

  const start = async (entry: ServerEntry, proxy: Parameters<typeof proxyJsonRpc>[0], warnings?: Record<string, unknown>[], sse = true): Promise<TestGateway> => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings?.push(JSON.parse(line) as Record<string, unknown>) });
    const plugins = [transportStdio(), proxyJsonRpc(proxy), ...(sse ? [transportSse()] : []), headerAuth];
    const gw = await startGateway({ counter: entry }, { kernel: { logger }, plugins });
    gateways.push(gw);
    return gw;
  };

  it('isolation "session": at the limit, a new initialize gets 503 with Retry-After while the sessions in use keep their processes and state', async () => {
    const gw = await start(isolated(), { maxInstances: 2 });
    // alice: the SDK client (it holds a GET stream); bob: plain POSTs, just used
    const alice = await sdkClient(gw);
    clients.push(alice);
    const bob = await openRaw(gw);
    const a1 = await countSdk(alice);
    const b1 = await countRaw(gw, bob);
    expect([a1.split(':')[1], b1.split(':')[1]]).to.deep.equal(['1', '1']);
    expect(pidOf(a1)).to.not.equal(pidOf(b1));

    const refused = await postJson(gw.url('/counter/mcp'), initialize);
    expect(refused.status).to.equal(503);
    expect(refused.headers.get('mcp-session-id')).to.equal(null);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).to.be.within(1, 60);
    expect(refused.json).to.deep.equal({
      jsonrpc: '2.0',
      id: 1,
      error: {
        code: -32000,
        message:
          'Server "counter" has 2 processes busy (limit: --max-instances, proxy option maxInstances), each with a call in flight, an open stream or a message in the last 60 s, so no process was started for this one: retry after the time in Retry-After, or raise --max-instances (maxInstances)',
        data: { limit: 2, retryAfterSeconds: retryAfter },
      },
    });
    // the SDK client is told the same
    const carol = new Client({ name: 'limit-test', version: '1.0.0' });
    let error: Error | undefined;
    await carol.connect(new StreamableHTTPClientTransport(new URL(gw.url('/counter/mcp')))).catch((err: Error) => (error = err));
    expect((error as Error & { code?: number }).code).to.equal(503);
    expect(error?.message).to.include('has 2 processes busy (limit: --max-instances, proxy option maxInstances)');

    expect(await countSdk(alice)).to.equal(`${pidOf(a1)}:2`);
    expect(await countRaw(gw, bob)).to.equal(`${pidOf(b1)}:2`);
  });

  it('stops a process idle instanceEvictIdleMs to make room: its session ends with 404 (never a silent new process), with one warning naming the server and the limit', async () => {
    const warnings: Record<string, unknown>[] = [];
    // without transport-sse no client holds a GET stream: the SDK client is idle between its calls
    const gw = await start(isolated(), { maxInstances: 2, instanceEvictIdleMs: 0 }, warnings, false);
    const alice = await sdkClient(gw);
    clients.push(alice);
    const bob = await openRaw(gw);
    const a1 = await countSdk(alice);
    const b1 = await countRaw(gw, bob);

    // carol's process takes the place of alice's, the one idle longest
    const carol = await openRaw(gw);
    expect(await countRaw(gw, carol)).to.match(/^\d+:1$/);
    let error: Error | undefined;
    await countSdk(alice).catch((err: Error) => (error = err));
    expect((error as Error & { code?: number }).code).to.equal(404);
    expect(error?.message).to.include('Session not found: it ended or expired; send initialize to start a new one');
    expect(await countRaw(gw, bob)).to.equal(`${pidOf(b1)}:2`);

    // dave's takes carol's place (bob was used since): carol's session answers 404 to a plain POST too
    const dave = await openRaw(gw);
    expect(await countRaw(gw, bob)).to.equal(`${pidOf(b1)}:3`);
    expect(await countRaw(gw, carol)).to.equal('404 {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"Session not found: it ended or expired; send initialize to start a new one"}}');
    expect(await countRaw(gw, dave)).to.match(/^\d+:1$/);
    expect(pidOf(a1)).to.not.equal(pidOf(b1));

    const limit = warnings.filter((w) => String(w.msg).startsWith('process limit reached'));
    expect(limit.map((w) => [w.server, w.evicted, w.refused, w.msg])).to.deep.equal([
      ['counter', 1, 0, 'process limit reached: server "counter" holds 2 processes (--max-instances, proxy option maxInstances); stopped 1 idle processes (their sessions ended) and refused 0 new ones (counts since the last warning): raise --max-instances (maxInstances) if this is normal load'],
    ]);
  });

  it('stops first a process whose session never confirmed its handshake: a bare initialize never ends a confirmed user\'s session', async () => {
    const gw = await start(isolated(), { maxInstances: 2, instanceEvictIdleMs: 0 }, [], false);
    // alice confirms and uses her session; then an initialize that never confirms takes the second process
    const alice = await openRaw(gw);
    const a1 = await countRaw(gw, alice);
    const bare = await postJson(gw.url('/counter/mcp'), initialize);
    expect(bare.status, bare.text).to.equal(200);
    const unconfirmed = bare.headers.get('mcp-session-id')!;
    // alice is now the one idle longest, yet the next initialize takes the unconfirmed session's place
    const next = await postJson(gw.url('/counter/mcp'), initialize);
    expect(next.status, next.text).to.equal(200);
    expect(await countRaw(gw, alice)).to.equal(`${pidOf(a1)}:2`);
    expect(await countRaw(gw, unconfirmed)).to.equal('404 {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"Session not found: it ended or expired; send initialize to start a new one"}}');
  });

  it('an open GET stream keeps a process however idle: the new session is refused until the stream closes, then takes its place', async () => {
    const gw = await start(isolated(), { maxInstances: 1, instanceEvictIdleMs: 0 });
    const alice = await openRaw(gw);
    expect(await countRaw(gw, alice)).to.match(/^\d+:1$/);
    const ac = new AbortController();
    const stream = await fetch(gw.url('/counter/mcp'), { headers: { accept: 'text/event-stream', 'mcp-session-id': alice, 'mcp-protocol-version': VERSION }, signal: ac.signal });
    expect(stream.status).to.equal(200);
    const refused = await postJson(gw.url('/counter/mcp'), initialize);
    expect(refused.status).to.equal(503);
    expect(refused.headers.get('retry-after')).to.equal('1');
    ac.abort();
    const bob = await until(async () => {
      const res = await postJson(gw.url('/counter/mcp'), initialize);
      return res.status === 200 ? res.headers.get('mcp-session-id')! : undefined;
    }, 10_000, 'a new session once the stream closed');
    expect(await countRaw(gw, bob)).to.match(/^\d+:1$/);
    expect(await countRaw(gw, alice)).to.match(/^404 /);
  });

  it('a process per token (auth): a new token\'s call gets 503 with Retry-After while the tokens in use keep their processes', async () => {
    const gw = await start(counter({ auth: { type: 'key' } }), { maxInstances: 2 });
    const call = (key: string) => postJson(gw.url('/counter/mcp'), countCall, { 'x-key': key });
    const text = async (key: string): Promise<string> => ((await call(key)).json as Rpc).result!.content[0]!.text;
    const alice = await text('alice');
    const bob = await text('bob');
    const refused = await call('carol');
    expect(refused.status).to.equal(503);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    expect((refused.json as Rpc).error!.message).to.equal(
      'Server "counter" has 2 processes busy (limit: --max-instances, proxy option maxInstances), each with a call in flight, an open stream or a message in the last 60 s, so no process was started for this one: retry after the time in Retry-After, or raise --max-instances (maxInstances)',
    );
    // a 2026-07-28 request (no session) is refused the same way
    const modern = await modernPost(gw.url('/counter/mcp'), 7, 'tools/call', { name: 'count', arguments: {} }, { 'x-key': 'carol' });
    expect(modern.status).to.equal(503);
    expect(Number(modern.headers.get('retry-after'))).to.be.within(1, 60);
    expect((modern.json as Rpc & { id: unknown }).id).to.equal(7);
    expect((modern.json as Rpc).error!.message).to.equal((refused.json as Rpc).error!.message);
    expect(await text('alice')).to.equal(`${pidOf(alice)}:2`);
    expect(await text('bob')).to.equal(`${pidOf(bob)}:2`);
  });

  it('a session whose process stopped for idleness (instanceIdleMs) ends with it: 404, not a fresh process', async () => {
    const gw = await start(isolated(), { instanceIdleMs: 300 });
    const alice = await openRaw(gw);
    expect(await countRaw(gw, alice)).to.match(/^\d+:1$/);
    await until(async () => {
      const health = (await (await fetch(gw.url('/health'))).json()) as { servers: { counter: { instances: number } } };
      return health.servers.counter.instances === 0 ? true : undefined;
    }, 10_000, 'the idle process to stop');
    expect(await countRaw(gw, alice)).to.equal('404 {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"Session not found: it ended or expired; send initialize to start a new one"}}');
  });
});

/** A test strategy: X-Key names the caller, who gets a process of its own. */
const headerAuth = definePlugin({
  name: 'test-key-auth',
  register(api) {
    api.authStrategies.register('key', {
      key: 'key',
      authenticate(ctx) {
        const key = ctx.req.headers['x-key'];
        if (typeof key !== 'string') throw errors.FMCP_ERR_UNAUTHORIZED('send X-Key');
        return { key: `k:${key}`, env: {} };
      },
    });
  },
});
