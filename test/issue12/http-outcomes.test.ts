import { expect } from 'chai';
import { connect } from 'node:net';
import { everythingEntry, startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, waitFor, type Answer } from '../helpers/request.js';
import { openSse, type SseReading } from '../plugins/transport-sse/sse-reader.js';

const MCP = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const JSON_ONLY = { 'content-type': 'application/json', accept: 'application/json' };
const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
const longCall = (id: number | string, progressToken?: string): Record<string, unknown> => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 }, ...(progressToken ? { _meta: { progressToken } } : {}) },
});
const cancelled = (requestId: number | string): string => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'the user pressed stop' } });

/** A promise that fails when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))),
  ]);
}

/**
 * Issue 12, item 5: every request gets a definite, readable HTTP outcome: a message that is not JSON-RPC
 * is refused on the request that carried it; a call that ended without a response has its POST ended;
 * an oversized body gets a 413 that a client still writing can read.
 */
describe('issue 12: definite HTTP outcomes', function () {
  this.timeout(40_000);
  let gw: TestGateway;
  let port: number;
  const open: SseReading[] = [];

  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
    port = gw.kernel.address().port;
  });
  afterEach(() => {
    for (const reading of open.splice(0)) reading.close();
  });
  after(() => gw?.stop());

  const inFlight = async (): Promise<number> => (await request(port, { path: '/health' })).json<{ servers: { everything: { inFlight: number } } }>().servers.everything.inFlight;
  const session = async (): Promise<string> => {
    const res = await request(port, { method: 'POST', path: '/everything/mcp', headers: MCP, body: JSON.stringify(INIT) });
    expect(res.status).to.equal(200);
    return String(res.headers['mcp-session-id']);
  };

  describe('legacy HTTP+SSE: a message that is not JSON-RPC gets 400 on its own POST', () => {
    const legacySession = async (): Promise<{ endpoint: string; stream: SseReading }> => {
      const stream = await openSse(port, '/everything/sse');
      open.push(stream);
      await waitFor(() => stream.events.some((e) => e.event === 'endpoint'), 10_000, 'the endpoint event');
      return { endpoint: stream.events.find((e) => e.event === 'endpoint')!.data, stream };
    };

    it('answers {"foo":1} with 400 and a JSON-RPC -32600 error, and nothing on the stream', async () => {
      const { endpoint, stream } = await legacySession();
      const res = await request(port, { method: 'POST', path: endpoint, headers: { 'content-type': 'application/json' }, body: '{"foo":1}' });
      expect(res.status).to.equal(400);
      const body = res.json<{ jsonrpc: string; id: unknown; error: { code: number } }>();
      expect(body.jsonrpc).to.equal('2.0');
      expect(body.id).to.equal(null);
      expect(body.error.code).to.equal(-32600);
      // a valid message afterwards still works, and only its answer reaches the stream
      const ok = await request(port, { method: 'POST', path: endpoint, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...INIT, id: 5 }) });
      expect(ok.status).to.equal(202);
      await waitFor(() => stream.events.some((e) => e.event === 'message'), 10_000, 'the initialize answer');
      const responses = stream.events.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as { id: unknown; method?: string }).filter((m) => m.method === undefined);
      expect(responses.map((m) => m.id)).to.deep.equal([5]);
    });

    it('answers 400 to its siblings: a numeric method, an object id, a batch with one bad message, and the same on POST /sse', async () => {
      const { endpoint } = await legacySession();
      for (const body of [
        '{"jsonrpc":"2.0","method":5}',
        '{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}',
        '{"jsonrpc":"2.0","method":"tools/list","params":"text"}',
        '{"jsonrpc":"2.0","id":3}',
        '[{"jsonrpc":"2.0","method":"notifications/initialized"},{"foo":1}]',
      ]) {
        const res = await request(port, { method: 'POST', path: endpoint, headers: { 'content-type': 'application/json' }, body });
        expect(res.status, body).to.equal(400);
        expect(res.json<{ error: { code: number } }>().error.code, body).to.equal(-32600);
      }
      const streamed = await request(port, { method: 'POST', path: '/everything/sse', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: '{"foo":1}' });
      expect(streamed.status).to.equal(400);
      expect(streamed.json<{ error: { code: number } }>().error.code).to.equal(-32600);
    });
  });

  describe('a call that ends without a response ends its POST', () => {
    it('ends the SSE answer of a call the client cancelled with notifications/cancelled, with no response in it', async () => {
      const id = await session();
      const call = await openSse(port, '/everything/mcp', { method: 'POST', headers: { ...MCP, 'mcp-session-id': id }, body: JSON.stringify(longCall(7, 'p-7')) });
      open.push(call);
      await waitFor(() => call.events.some((e) => e.data.includes('notifications/progress')), 15_000, 'the first progress notification');
      const res = await request(port, { method: 'POST', path: '/everything/mcp', headers: { ...MCP, 'mcp-session-id': id }, body: cancelled(7) });
      expect(res.status).to.equal(202);
      expect(await within(call.finished, 5000, 'the end of the cancelled call\'s POST')).to.equal('end');
      // progress, and maybe the server's own requests (server-everything asks for roots), but no response
      const messages = call.events.map((e) => JSON.parse(e.data) as { id?: unknown; method?: string; result?: unknown; error?: unknown });
      expect(messages.filter((m) => m.method === undefined), 'no response for the cancelled request').to.deep.equal([]);
      expect(messages.filter((m) => m.method === 'notifications/progress')).to.not.have.length(0);
      expect(await inFlight()).to.equal(0);
    });

    it('ends a JSON-only call that was cancelled with a -32800 error, with and without a session', async () => {
      for (const withSession of [true, false]) {
        const headers: Record<string, string> = withSession ? { ...JSON_ONLY, 'mcp-session-id': await session() } : JSON_ONLY;
        const pending = request(port, { method: 'POST', path: '/everything/mcp', headers, body: JSON.stringify(longCall('call-a')) });
        await (async () => {
          const deadline = Date.now() + 10_000;
          while ((await inFlight()) === 0) if (Date.now() > deadline) throw new Error('the call never reached the server');
        })();
        const res = await request(port, { method: 'POST', path: '/everything/mcp', headers, body: cancelled('call-a') });
        expect(res.status).to.equal(202);
        const answer: Answer = await within(pending, 5000, 'the answer to the cancelled call');
        expect(answer.status).to.equal(200);
        const body = answer.json<{ id: unknown; error: { code: number; message: string } }>();
        expect({ id: body.id, code: body.error.code }).to.deep.equal({ id: 'call-a', code: -32800 });
        expect(body.error.message).to.equal('Request cancelled: the user pressed stop');
        expect(await inFlight()).to.equal(0);
      }
    });

    it('ends a call whose session is deleted while it runs, and a batch whose call is cancelled', async () => {
      const id = await session();
      const call = await openSse(port, '/everything/mcp', { method: 'POST', headers: { ...MCP, 'mcp-session-id': id }, body: JSON.stringify(longCall(9, 'p-9')) });
      open.push(call);
      await waitFor(() => call.events.some((e) => e.data.includes('notifications/progress')), 15_000, 'the first progress notification');
      const deleted = await request(port, { method: 'DELETE', path: '/everything/mcp', headers: { 'mcp-session-id': id } });
      expect(deleted.status).to.equal(204);
      expect(await within(call.finished, 5000, 'the end of the deleted session\'s call')).to.equal('end');

      // batches exist in 2025-03-26
      const init = await request(port, { method: 'POST', path: '/everything/mcp', headers: MCP, body: JSON.stringify({ ...INIT, params: { ...INIT.params, protocolVersion: '2025-03-26' } }) });
      const old = String(init.headers['mcp-session-id']);
      const headers = { ...JSON_ONLY, 'mcp-session-id': old, 'mcp-protocol-version': '2025-03-26' };
      const batch = request(port, { method: 'POST', path: '/everything/mcp', headers, body: JSON.stringify([longCall(11), { jsonrpc: '2.0', id: 12, method: 'tools/list' }]) });
      const deadline = Date.now() + 10_000;
      while ((await inFlight()) === 0) if (Date.now() > deadline) throw new Error('the batch never reached the server');
      await request(port, { method: 'POST', path: '/everything/mcp', headers, body: cancelled(11) });
      const answer = await within(batch, 5000, 'the answer to the batch');
      expect(answer.status).to.equal(200);
      expect(answer.json<{ id: unknown }[]>().map((m) => m.id)).to.deep.equal([12]);
    });
  });

  describe('an oversized body gets a 413 a client still writing can read', () => {
    const post = async (path: string, body: BodyInit, headers: Record<string, string> = MCP): Promise<number> => {
      const res = await fetch(`${gw.base}${path}`, { method: 'POST', headers, body, duplex: 'half' } as RequestInit);
      await res.text();
      return res.status;
    };

    it('lets a client write its whole 6 MiB body without EPIPE, then answers 413 and closes (raw socket, 3 tries)', async () => {
      const size = 6 * 1024 * 1024;
      const once = (): Promise<{ head: string; error: string | undefined; written: number }> =>
        new Promise((resolve) => {
          const socket = connect(port, '127.0.0.1');
          let text = '';
          let error: string | undefined;
          let written = 0;
          socket.setEncoding('latin1').on('data', (d: string) => (text += d));
          socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code));
          socket.on('close', () => resolve({ head: text.split('\r\n')[0]!, error, written }));
          socket.write(`POST /everything/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`);
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          const pump = (): void => {
            while (written < size && !socket.destroyed) {
              written += chunk.length;
              if (!socket.write(chunk)) {
                socket.once('drain', pump);
                return;
              }
            }
          };
          pump();
        });
      const results = [await once(), await once(), await once()];
      expect(results).to.deep.equal(Array(3).fill({ head: 'HTTP/1.1 413 Payload Too Large', error: undefined, written: size }));
    });

    it('answers a 6 MiB POST with 413 that Node\'s fetch reads, every time (10 tries)', async () => {
      const body = Buffer.alloc(6 * 1024 * 1024, 0x20);
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 10; i++) statuses.push(await post('/everything/mcp', body).catch((err: Error) => `${err.message}: ${String((err.cause as Error)?.message)}`));
      expect(statuses).to.deep.equal(Array(10).fill(413));
    });

    it('does the same for a chunked body without Content-Length, and on POST /sse', async () => {
      const chunked = (): ReadableStream<Uint8Array> => {
        let sent = 0;
        return new ReadableStream({
          pull(controller) {
            if (sent >= 6 * 1024 * 1024) return controller.close();
            sent += 256 * 1024;
            controller.enqueue(new Uint8Array(256 * 1024).fill(0x20));
          },
        });
      };
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 5; i++) statuses.push(await post('/everything/mcp', chunked()).catch((err: Error) => `${err.message}: ${String((err.cause as Error)?.message)}`));
      for (let i = 0; i < 5; i++) statuses.push(await post('/everything/sse', Buffer.alloc(6 * 1024 * 1024, 0x20)).catch((err: Error) => `${err.message}: ${String((err.cause as Error)?.message)}`));
      expect(statuses).to.deep.equal(Array(10).fill(413));
    });
  });
});
