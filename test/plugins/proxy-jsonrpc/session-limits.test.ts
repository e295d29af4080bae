import { expect } from 'chai';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { proxyJsonRpc, transportSse, transportStdio } from '../../../index.js';
import { clientAddress } from '../../../plugins/proxy-jsonrpc/session-limits.js';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { waitFor } from '../../helpers/request.js';
import { openSse, type SseReading } from '../transport-sse/sse-reader.js';

const mini = () => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')] });

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: { result?: { content?: { text: string }[] }; error?: { code: number; message: string; data?: unknown } };
}

/** One POST to /mini/mcp (or `method` to `path`), from `localAddress` (any 127.0.0.0/8 address reaches the gateway on 127.0.0.1). */
function post(gw: TestGateway, body: unknown, headers: Record<string, string> = {}, localAddress = '127.0.0.1', method = 'POST', path = '/mini/mcp'): Promise<Answer> {
  const text = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: gw.kernel.address().port,
        localAddress,
        method,
        path,
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(text), ...headers },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(parts).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: raw && res.headers['content-type']?.startsWith('application/json') ? (JSON.parse(raw) as Answer['json']) : {} });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(text);
  });
}

/** GET /mini/sse: the refusal read whole, or an open stream. */
async function sseOpen(gw: TestGateway): Promise<SseReading> {
  const raw = await openSse(gw.kernel.address().port, '/mini/sse');
  if (raw.status !== 200) await raw.finished;
  return raw;
}

const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'limits', version: '1' } } };

/** initialize; the session id, or the refusal. */
async function open(gw: TestGateway, localAddress?: string): Promise<{ id: string | undefined; answer: Answer }> {
  const answer = await post(gw, initialize, {}, localAddress);
  return { id: answer.headers['mcp-session-id'] as string | undefined, answer };
}

/** initialize, then notifications/initialized: a client in use. */
async function openConfirmed(gw: TestGateway, localAddress?: string): Promise<string> {
  const { id, answer } = await open(gw, localAddress);
  expect(answer.status, JSON.stringify(answer.json)).to.equal(200);
  const ack = await post(gw, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id!, 'mcp-protocol-version': '2025-11-25' }, localAddress);
  expect(ack.status).to.equal(202);
  return id!;
}

/** What echo answers on the session: its text, or the HTTP status when the session is gone. */
async function echo(gw: TestGateway, session: string, message: string, localAddress?: string): Promise<string | number> {
  const res = await post(gw, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message } } }, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }, localAddress);
  return res.status === 200 ? res.json.result!.content![0]!.text : res.status;
}

describe('proxy-jsonrpc: the session limit never ends a session in use for a new one', function () {
  this.timeout(30_000);

  describe('maxSessions 3, sessions idle 60 s before they may be ended', () => {
    let gw: TestGateway;
    const warnings: { msg: string; evicted: number; refused: number }[] = [];
    beforeEach(async () => {
      warnings.length = 0;
      const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as (typeof warnings)[number]) });
      gw = await startGateway(
        { mini: mini() },
        { kernel: { logger }, plugins: [transportStdio(), proxyJsonRpc({ maxSessions: 3, sessionEvictIdleMs: 60_000 }), transportSse()] },
      );
    });
    afterEach(() => gw.stop());

    it('a flood of initialize requests that never confirm ends only its own sessions, oldest first; the users keep theirs', async () => {
      const alice = await openConfirmed(gw);
      const bob = await openConfirmed(gw);
      const flood: string[] = [];
      for (let i = 0; i < 10; i++) {
        const { id, answer } = await open(gw);
        expect(answer.status).to.equal(200);
        flood.push(id!);
      }
      expect(await echo(gw, alice, 'alice')).to.equal('alice');
      expect(await echo(gw, bob, 'bob')).to.equal('bob');
      // the last flood session holds the third place; each earlier one was ended by the next
      for (const id of flood.slice(0, -1)) expect(await echo(gw, id, 'gone')).to.equal(404);
      expect(await echo(gw, flood.at(-1)!, 'last')).to.equal('last');
      // one warning for the lot (rate limited), counting what it did
      const limitWarnings = warnings.filter((w) => w.msg.startsWith('session limit reached'));
      expect(limitWarnings.map((w) => [w.evicted, w.refused])).to.deep.equal([[1, 0]]);
    });

    it('when every session is in use, answers the new initialize 503 with Retry-After and says what, where and what to do', async () => {
      const users = [await openConfirmed(gw), await openConfirmed(gw), await openConfirmed(gw)];
      const { id, answer } = await open(gw);
      expect(id).to.equal(undefined);
      expect(answer.status).to.equal(503);
      const retryAfter = Number(answer.headers['retry-after']);
      expect(retryAfter).to.be.within(1, 60);
      expect(answer.json).to.deep.equal({
        jsonrpc: '2.0',
        id: 1,
        error: {
          code: -32000,
          message:
            'Session limit reached: the gateway holds 3 sessions (--max-sessions, proxy option maxSessions), all in use, so /mini/mcp opened no new one: retry after the time in Retry-After, or call without a session (a JSON-RPC POST without initialize, or protocol 2026-07-28)',
          data: { limit: 3, retryAfterSeconds: retryAfter },
        },
      });
      for (const [i, user] of users.entries()) expect(await echo(gw, user, `user ${i}`)).to.equal(`user ${i}`);
      // a call without a session still works
      const bare = await post(gw, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'bare' } } });
      expect(bare.json.result!.content![0]!.text).to.equal('bare');
    });
  });

  it('ends the session idle longest past sessionEvictIdleMs, never one with an open stream', async () => {
    const gw = await startGateway({ mini: mini() }, { plugins: [transportStdio(), proxyJsonRpc({ maxSessions: 2, sessionEvictIdleMs: 0 }), transportSse()] });
    const ac = new AbortController();
    try {
      // the first session listens on its GET stream: in use however long it is quiet, though seen before the other
      const listening = await openConfirmed(gw);
      const stream = await fetch(gw.url('/mini/mcp'), { headers: { accept: 'text/event-stream', 'mcp-session-id': listening, 'mcp-protocol-version': '2025-11-25' }, signal: ac.signal });
      expect(stream.status).to.equal(200);
      const idle = await openConfirmed(gw);
      const newcomer = await openConfirmed(gw);
      expect(await echo(gw, idle, 'idle')).to.equal(404);
      expect(await echo(gw, listening, 'listening')).to.equal('listening');
      expect(await echo(gw, newcomer, 'newcomer')).to.equal('newcomer');
    } finally {
      ac.abort();
      await gw.stop();
    }
  });

  it('maxSessionsPerAddress: one address gets 429 at its limit while another address still gets sessions', async () => {
    const gw = await startGateway({ mini: mini() }, { plugins: [transportStdio(), proxyJsonRpc({ maxSessions: 10, maxSessionsPerAddress: 2 }), transportSse()] });
    try {
      const first = [await openConfirmed(gw, '127.0.0.1'), await openConfirmed(gw, '127.0.0.1')];
      const { answer } = await open(gw, '127.0.0.1');
      expect(answer.status).to.equal(429);
      expect(Number(answer.headers['retry-after'])).to.be.within(1, 300);
      expect(answer.json.error!.message).to.equal(
        'Too many sessions from 127.0.0.1: it holds 2 (--max-sessions-per-address, proxy option maxSessionsPerAddress), all in use, so /mini/mcp opened no new one: end sessions it no longer needs (DELETE /mini/mcp with their Mcp-Session-Id) or retry after the time in Retry-After',
      );
      const other = await openConfirmed(gw, '127.0.0.2');
      expect(await echo(gw, other, 'other', '127.0.0.2')).to.equal('other');
      for (const id of first) expect(await echo(gw, id, 'kept')).to.equal('kept');
      // an unconfirmed session of the same address makes room for the next one from there
      const third = await open(gw, '127.0.0.2');
      expect(third.answer.status).to.equal(200);
      const fourth = await open(gw, '127.0.0.2');
      expect(fourth.answer.status).to.equal(200);
      expect(await echo(gw, third.id!, 'gone', '127.0.0.2')).to.equal(404);
      expect(await echo(gw, other, 'still', '127.0.0.2')).to.equal('still');
    } finally {
      await gw.stop();
    }
  });

  it('maxSessionsPerAddress counts legacy HTTP+SSE sessions too: GET /sse gets 429 before any stream opens', async () => {
    const gw = await startGateway({ mini: mini() }, { plugins: [transportStdio(), proxyJsonRpc({ maxSessionsPerAddress: 1 }), transportSse()] });
    const client = new Client({ name: 'sse', version: '1' });
    try {
      const held = await openConfirmed(gw);
      let refused: unknown;
      await client.connect(new SSEClientTransport(new URL(gw.url('/mini/sse')))).catch((err: unknown) => (refused = err));
      expect(refused).to.be.instanceOf(SseError);
      expect((refused as SseError).code).to.equal(429);
      const raw = await sseOpen(gw);
      expect(raw.status).to.equal(429);
      expect(raw.headers['content-type']).to.match(/^application\/json/);
      expect(Number(raw.headers['retry-after'])).to.be.within(1, 300);
      expect(JSON.parse(raw.text)).to.deep.equal({
        error: {
          code: 'FMCP_ERR_SESSION_LIMIT_ADDRESS',
          message: 'Too many sessions from 127.0.0.1: it holds 1 (--max-sessions-per-address, proxy option maxSessionsPerAddress), all in use, so /mini/sse opened no new one: end sessions it no longer needs (close its /mini/sse event streams) or retry after the time in Retry-After',
        },
      });
      expect(await echo(gw, held, 'held')).to.equal('held');
    } finally {
      await client.close();
      await gw.stop();
    }
  });

  describe('legacy HTTP+SSE at maxSessions 2', () => {
    let gw: TestGateway;
    const clients: Client[] = [];
    const raws: SseReading[] = [];
    beforeEach(async () => {
      gw = await startGateway({ mini: mini() }, { plugins: [transportStdio(), proxyJsonRpc({ maxSessions: 2, sessionEvictIdleMs: 60_000 }), transportSse()] });
    });
    afterEach(async () => {
      for (const raw of raws.splice(0)) raw.close();
      for (const client of clients.splice(0)) await client.close();
      await gw.stop();
    });

    async function sdkClient(): Promise<Client> {
      const client = new Client({ name: 'legacy', version: '1' });
      clients.push(client);
      await client.connect(new SSEClientTransport(new URL(gw.url('/mini/sse'))));
      return client;
    }

    const sdkEcho = async (client: Client, message: string): Promise<string> =>
      ((await client.callTool({ name: 'echo', arguments: { message } })).content as { text: string }[])[0]!.text;

    /** GET /mini/sse held open; resolves once its endpoint event arrived. */
    async function pendingStream(): Promise<SseReading> {
      const raw = await sseOpen(gw);
      raws.push(raw);
      expect(raw.status).to.equal(200);
      await waitFor(() => raw.events.length > 0, 10_000, 'the endpoint event');
      expect(raw.events[0]!.event).to.equal('endpoint');
      return raw;
    }

    it('when every session is in use, GET /sse gets 503 with Retry-After before any stream opens, and holds no place', async () => {
      const alice = await sdkClient();
      const bob = await openConfirmed(gw);
      let refused: unknown;
      const late = new Client({ name: 'late', version: '1' });
      await late.connect(new SSEClientTransport(new URL(gw.url('/mini/sse')))).catch((err: unknown) => (refused = err));
      expect(refused).to.be.instanceOf(SseError);
      expect((refused as SseError).code).to.equal(503);
      const raw = await sseOpen(gw);
      expect(raw.status).to.equal(503);
      expect(raw.headers['content-type']).to.match(/^application\/json/);
      expect(Number(raw.headers['retry-after'])).to.be.within(1, 60);
      expect(JSON.parse(raw.text)).to.deep.equal({
        error: {
          code: 'FMCP_ERR_SESSION_LIMIT',
          message:
            'Session limit reached: the gateway holds 2 sessions (--max-sessions, proxy option maxSessions), all in use, so /mini/sse opened no new one: retry after the time in Retry-After, or call without a session (a JSON-RPC POST without initialize, or protocol 2026-07-28)',
        },
      });
      expect(await sdkEcho(alice, 'alice')).to.equal('alice');
      expect(await echo(gw, bob, 'bob')).to.equal('bob');
      // the refusals left nothing behind: one place freed gives exactly one new session
      const ended = await post(gw, undefined, { 'mcp-session-id': bob }, '127.0.0.1', 'DELETE');
      expect(ended.status).to.equal(204);
      const carol = await sdkClient();
      expect(await sdkEcho(carol, 'carol')).to.equal('carol');
      expect((await sseOpen(gw)).status).to.equal(503);
    });

    it('streams that never send initialize hold a place each and are closed oldest first to make room; users keep theirs', async () => {
      const alice = await sdkClient();
      const idle = [await pendingStream(), await pendingStream(), await pendingStream()];
      // the second place went from one silent stream to the next: only the newest is still open
      for (const raw of idle.slice(0, -1)) expect(await raw.finished).to.equal('end');
      const endpoint = idle[0]!.events[0]!.data;
      const gone = await post(gw, initialize, {}, '127.0.0.1', 'POST', endpoint);
      expect(gone.status).to.equal(404);
      // a client that initializes takes the place of the last silent one
      const bob = await sdkClient();
      expect(await idle.at(-1)!.finished).to.equal('end');
      expect(await sdkEcho(alice, 'alice')).to.equal('alice');
      expect(await sdkEcho(bob, 'bob')).to.equal('bob');
      // both places are sessions in use now
      expect((await sseOpen(gw)).status).to.equal(503);
    });
  });

  it('counts IPv6 clients by their /64 and IPv4-mapped addresses as IPv4', () => {
    expect(clientAddress('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).to.equal('2001:db8:1:2::/64');
    expect(clientAddress('2001:db8::1')).to.equal('2001:db8:0:0::/64');
    expect(clientAddress('::1')).to.equal('0:0:0:0::/64');
    expect(clientAddress('::ffff:10.1.2.3')).to.equal('10.1.2.3');
    expect(clientAddress('10.1.2.3')).to.equal('10.1.2.3');
  });
});
