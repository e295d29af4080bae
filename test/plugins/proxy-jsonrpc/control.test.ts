import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { proxyJsonRpc, transportSse, transportStdio, webConsole, type ServerEntry } from '../../../index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { request, until, waitFor } from '../../helpers/request.js';
import { openSse, type SseReading } from '../transport-sse/sse-reader.js';

/** `count` answers "<pid>:<calls so far>": its state lives in its process. */
const counter = (extra: Partial<ServerEntry> = {}): ServerEntry => ({ command: process.execPath, args: [fixture('pid-counter.mjs')], ...extra });

const VERSION = '2025-11-25';
const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'control-test', version: '1' } } };
const countCall = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'count', arguments: {} } };
const CHANGE = { 'x-fluidmcp-console': '1', 'content-type': 'application/json' };
const STOPPED = 'it ended because an operator stopped the process of server "counter" that served it';
/** as it reads inside a JSON body (the SDK's error quotes the body) */
const STOPPED_JSON = JSON.stringify(STOPPED).slice(1, -1);

interface Instance {
  id: string;
  pid?: number;
}

describe('proxy-jsonrpc: an operator stopping a process ends the sessions it served', function () {
  this.timeout(60_000);
  let gw: TestGateway;
  const clients: Client[] = [];
  const streams: SseReading[] = [];
  const port = (): number => gw.kernel.address().port;

  const start = async (entry: ServerEntry): Promise<void> => {
    gw = await startGateway({ counter: entry }, { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), webConsole()] });
  };
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await gw.stop();
  });

  async function sdkClient(): Promise<Client> {
    const client = new Client({ name: 'control-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url('/counter/mcp'))));
    return client;
  }
  const countSdk = async (client: Client): Promise<string> => ((await client.callTool({ name: 'count', arguments: {} })) as { content: { text: string }[] }).content[0]!.text;

  /** A session opened with plain POSTs, with its GET stream open. */
  async function rawSession(): Promise<{ id: string; stream: SseReading }> {
    const res = await postJson(gw.url('/counter/mcp'), initialize);
    expect(res.status, res.text).to.equal(200);
    const id = res.headers.get('mcp-session-id')!;
    expect((await postJson(gw.url('/counter/mcp'), { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id, 'mcp-protocol-version': VERSION })).status).to.equal(202);
    const stream = await openSse(port(), '/counter/mcp', { headers: { 'mcp-session-id': id, 'mcp-protocol-version': VERSION } });
    streams.push(stream);
    expect(stream.status).to.equal(200);
    return { id, stream };
  }
  async function countRaw(id: string): Promise<string> {
    const res = await postJson(gw.url('/counter/mcp'), countCall, { 'mcp-session-id': id, 'mcp-protocol-version': VERSION });
    const json = res.json as { result?: { content: { text: string }[] } };
    return res.status === 200 && json.result ? json.result.content[0]!.text : `${res.status} ${res.text}`;
  }

  const instances = async (): Promise<Instance[]> => (await request(port(), { path: '/api/servers/counter' })).json<{ instances: Instance[] }>().instances;
  const instanceOf = async (answer: string): Promise<string> => (await instances()).find((i) => String(i.pid) === answer.split(':')[0])!.id;
  const stop = async (id: string) => request(port(), { method: 'POST', path: `/api/servers/counter/instances/${id}/stop`, headers: CHANGE, body: '{}' });
  const health = async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { counter: { sessions: number; instances: number; inFlight: number } } }).servers.counter;

  it('POST /api/servers/{name}/instances/{id}/stop: the next request of its session gets 404 saying why, its GET stream closes; other sessions go on', async () => {
    await start(counter({ isolation: 'session' }));
    const alice = await sdkClient();
    const bob = await rawSession();
    const a1 = await countSdk(alice);
    const b1 = await countRaw(bob.id);
    expect([a1.split(':')[1], b1.split(':')[1]]).to.deep.equal(['1', '1']);

    // a call in flight on bob's process when it stops is answered, saying why
    const slow = postJson(gw.url('/counter/mcp'), { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'slow', arguments: { ms: 30_000 } } }, { 'mcp-session-id': bob.id, 'mcp-protocol-version': VERSION, accept: 'application/json' });
    await until(async () => ((await health()).inFlight === 1 ? true : undefined), 10_000, 'the slow call in flight');
    const stopped = await stop(await instanceOf(b1));
    expect(stopped.status).to.equal(200);
    expect((await slow).json).to.deep.equal({
      jsonrpc: '2.0',
      id: 9,
      error: { code: -32000, message: 'An operator stopped the process of server "counter" that served this call: send it again (the sessions of that process ended: initialize first)' },
    });
    expect(await bob.stream.finished).to.equal('end');
    expect(await countRaw(bob.id)).to.equal(`404 {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"Session not found: ${STOPPED_JSON}; send initialize to start a new one"}}`);
    expect(await countSdk(alice)).to.equal(`${a1.split(':')[0]}:2`);

    // the SDK client is told the same, as the 404 that makes a client initialize again
    await stop(await instanceOf(a1));
    let error: (Error & { code?: number }) | undefined;
    await countSdk(alice).catch((err: Error) => (error = err));
    expect(error?.code).to.equal(404);
    expect(error?.message).to.include(`Session not found: ${STOPPED_JSON}; send initialize to start a new one`);

    // nothing is left of either, and a new session gets a new process
    expect(await health()).to.deep.include({ sessions: 0, instances: 0 });
    const carol = await sdkClient();
    expect(await countSdk(carol)).to.match(/^\d+:1$/);
    expect(await health()).to.deep.include({ sessions: 1, instances: 1 });
  });

  it('a legacy HTTP+SSE session on the stopped process: its stream ends, its endpoint is gone, and a new stream serves nothing before initialize', async () => {
    await start(counter());
    const legacy = await openSse(port(), '/counter/sse');
    streams.push(legacy);
    await waitFor(() => legacy.events.length > 0, 10_000, 'the endpoint event');
    const endpoint = legacy.events[0]!.data;
    const send = (path: string, message: unknown) => request(port(), { method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(message) });
    expect((await send(endpoint, initialize)).status).to.equal(202);
    expect((await send(endpoint, { jsonrpc: '2.0', method: 'notifications/initialized' })).status).to.equal(202);
    expect((await send(endpoint, countCall)).status).to.equal(202);
    await waitFor(() => legacy.events.some((e) => e.data.includes('"id":2')), 10_000, 'the count answer');
    // a Streamable HTTP session on the same shared process
    const raw = await rawSession();
    expect(await health()).to.deep.include({ sessions: 2 });

    expect((await stop('shared')).status).to.equal(200);
    expect(await legacy.finished).to.equal('end');
    expect(await raw.stream.finished).to.equal('end');
    const gone = await send(endpoint, countCall);
    expect(gone.status).to.equal(404);
    expect(gone.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_SESSION_UNKNOWN');
    expect(await countRaw(raw.id)).to.include(STOPPED_JSON);
    expect((await health()).sessions).to.equal(0);

    // what a reconnecting legacy client meets: a new stream without a session answers its call with an error
    const again = await openSse(port(), '/counter/sse');
    streams.push(again);
    await waitFor(() => again.events.length > 0, 10_000, 'the endpoint event');
    expect((await send(again.events[0]!.data, countCall)).status).to.equal(202);
    await waitFor(() => again.events.length > 1, 10_000, 'the answer');
    expect(JSON.parse(again.events[1]!.data)).to.deep.equal({
      jsonrpc: '2.0',
      id: 2,
      error: {
        code: -32600,
        message: 'Invalid Request: this /counter/sse stream has no session yet: send initialize first (a session ends with its stream, or when an operator stops the server process that served it; then open GET /counter/sse again)',
      },
    });
  });

  it('POST /api/servers/{name}/restart keeps the sessions of the shared process (restarted in place, as after a crash)', async () => {
    await start(counter());
    const alice = await sdkClient();
    const a1 = await countSdk(alice);
    const restarted = await request(port(), { method: 'POST', path: '/api/servers/counter/restart', headers: CHANGE, body: '{}' });
    expect(restarted.status).to.equal(200);
    const a2 = await countSdk(alice);
    expect(a2.split(':')[0]).to.not.equal(a1.split(':')[0]);
    expect(a2.split(':')[1]).to.equal('1');
    expect((await health()).sessions).to.equal(1);
  });

  it('POST /api/servers/{name}/restart ends the sessions of processes of their own, which it does not start again', async () => {
    await start(counter({ isolation: 'session' }));
    const alice = await sdkClient();
    await countSdk(alice);
    const restarted = await request(port(), { method: 'POST', path: '/api/servers/counter/restart', headers: CHANGE, body: '{}' });
    expect(restarted.json()).to.deep.equal({ server: 'counter', restarted: true, stopped: 1, state: 'on demand' });
    let error: (Error & { code?: number }) | undefined;
    await countSdk(alice).catch((err: Error) => (error = err));
    expect(error?.code).to.equal(404);
    expect(error?.message).to.include(STOPPED_JSON);
    expect(await health()).to.deep.include({ sessions: 0, instances: 0 });
  });
});
