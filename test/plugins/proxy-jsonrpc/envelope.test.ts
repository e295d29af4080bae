import { expect } from 'chai';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { envelope, MODERN } from '../../helpers/modern.js';
import { waitFor } from '../../helpers/request.js';
import { openSse } from '../transport-sse/sse-reader.js';

/**
 * Messages that are JSON-RPC 2.0 objects but not ones an MCP peer may send (a member the spec does not
 * have, params that are not an object) are refused at once on every route, instead of being forwarded
 * to a server that drops them (the client then waited for the call timeout).
 */

interface Rpc {
  id: unknown;
  error?: { code: number; message: string };
  result?: unknown;
}

/** POSTs a raw body; bounded so a hang fails the test with a clear message instead of the suite timeout. */
async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

const EXTRA_X = '{"jsonrpc":"2.0","id":1,"method":"ping","x":1}';
const EXTRA_PROTO = '{"jsonrpc":"2.0","id":2,"method":"ping","__proto__":{"polluted":true}}';
const EXTRA_CONSTRUCTOR = '{"jsonrpc":"2.0","id":3,"method":"ping","constructor":1}';
const PARAMS_ARRAY = '{"jsonrpc":"2.0","id":4,"method":"ping","params":[]}';
const PARAMS_STRING = '{"jsonrpc":"2.0","id":5,"method":"tools/list","params":"x"}';

const unexpected = (member: string) =>
  `Invalid Request: unexpected member "${member}"; a JSON-RPC request or notification has only "jsonrpc", "id", "method" and "params" (put extra data in params or params._meta)`;
const notObject = (method: string, got: string) =>
  `Invalid params: "params" of ${method} must be an object, got ${got} (JSON-RPC 2.0 allows by-position arrays, MCP does not: send named params such as {"name": …})`;
const notStructured = (method: string, got: string) =>
  `Invalid Request: "params" of ${method} must be an object, got ${got} (JSON-RPC 2.0 params are structured values; MCP takes named params such as {"name": …})`;

describe('proxy-jsonrpc: messages outside the MCP envelope', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
  });
  after(() => gw.stop());

  const cases: [string, string, number, number, string][] = [
    ['an extra member "x"', EXTRA_X, 1, -32600, unexpected('x')],
    ['an extra member "__proto__" (an own member after JSON.parse)', EXTRA_PROTO, 2, -32600, unexpected('__proto__')],
    ['an extra member "constructor"', EXTRA_CONSTRUCTOR, 3, -32600, unexpected('constructor')],
    ['"params" as an array', PARAMS_ARRAY, 4, -32602, notObject('ping', 'an array')],
    ['"params" as a string', PARAMS_STRING, 5, -32600, notStructured('tools/list', 'a string')],
  ];

  describe('POST /{name}/mcp without a session', () => {
    for (const [what, body, id, code, message] of cases) {
      it(`refuses ${what} at once`, async () => {
        const res = await post(gw.url('/everything/mcp'), body);
        expect(res.status).to.equal(400);
        expect(res.json).to.deep.equal({ jsonrpc: '2.0', id, error: { code, message } });
      });
    }

    it('still serves a well-formed ping', async () => {
      const res = await post(gw.url('/everything/mcp'), '{"jsonrpc":"2.0","id":9,"method":"ping","params":{}}');
      expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 9, result: {} });
    });

    it('refuses a response with an extra member', async () => {
      const res = await post(gw.url('/everything/mcp'), '{"jsonrpc":"2.0","id":7,"result":{},"extra":true}');
      expect(res.status).to.equal(400);
      expect((res.json as Rpc).error).to.deep.equal({
        code: -32600,
        message: 'Invalid Request: unexpected member "extra"; a JSON-RPC response has only "jsonrpc", "id" and "result" or "error"',
      });
    });

    it('says what a call without a session supports when it gets a batch', async () => {
      const res = await post(gw.url('/everything/mcp'), `[${EXTRA_X}]`);
      expect(res.status).to.equal(400);
      expect((res.json as Rpc).error!.message).to.equal(
        'Invalid Request: batches (JSON arrays) exist only in protocol version 2025-03-26; a call without a session takes one JSON-RPC message per POST (or a batch with "MCP-Protocol-Version: 2025-03-26")',
      );
    });
  });

  describe('POST /{name}/mcp in a session', () => {
    async function session(version: string): Promise<Record<string, string>> {
      const init = await fetch(gw.url('/everything/mcp'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'envelope', version: '1' } } }),
        signal: AbortSignal.timeout(15_000),
      });
      await init.text();
      expect(init.status).to.equal(200);
      return { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': version };
    }

    for (const [what, body, id, code, message] of cases) {
      it(`refuses ${what} at once`, async () => {
        const headers = await session('2025-11-25');
        const res = await post(gw.url('/everything/mcp'), body, headers);
        expect(res.status).to.equal(400);
        expect(res.json).to.deep.equal({ jsonrpc: '2.0', id, error: { code, message } });
      });
    }

    it('answers each bad item of a 2025-03-26 batch with its own error, beside the good ones', async () => {
      const headers = await session('2025-03-26');
      const res = await post(gw.url('/everything/mcp'), `[${EXTRA_PROTO},${PARAMS_ARRAY},{"jsonrpc":"2.0","id":6,"method":"ping"}]`, headers);
      expect(res.status).to.equal(200);
      const answers = (res.json as Rpc[]).sort((a, b) => Number(a.id) - Number(b.id));
      expect(answers).to.deep.equal([
        { jsonrpc: '2.0', id: 2, error: { code: -32600, message: `${unexpected('__proto__')} (batch item 0)` } },
        { jsonrpc: '2.0', id: 4, error: { code: -32602, message: `${notObject('ping', 'an array')} (batch item 1)` } },
        { jsonrpc: '2.0', id: 6, result: {} },
      ]);
    });
  });

  describe('the 2026-07-28 path', () => {
    const headers = { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' };
    it('refuses an extra member', async () => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'tools/list', params: { _meta: envelope() }, x: 1 });
      const res = await post(gw.url('/everything/mcp'), body, headers);
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 11, error: { code: -32600, message: unexpected('x') } });
    });

    it('refuses params that are an array', async () => {
      const res = await post(gw.url('/everything/mcp'), '{"jsonrpc":"2.0","id":12,"method":"tools/list","params":[]}', headers);
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 12, error: { code: -32602, message: notObject('tools/list', 'an array') } });
    });
  });

  describe('the SSE routes', () => {
    it('POST /{name}/sse refuses an extra member and array params', async () => {
      const extra = await post(gw.url('/everything/sse'), EXTRA_CONSTRUCTOR);
      expect(extra.status).to.equal(400);
      expect(extra.json).to.deep.equal({ jsonrpc: '2.0', id: 3, error: { code: -32600, message: unexpected('constructor') } });
      const array = await post(gw.url('/everything/sse'), PARAMS_ARRAY);
      expect(array.status).to.equal(400);
      expect(array.json).to.deep.equal({ jsonrpc: '2.0', id: 4, error: { code: -32602, message: notObject('ping', 'an array') } });
    });

    it('POST /{name}/messages of an HTTP+SSE session refuses them too', async () => {
      const stream = await openSse(gw.kernel.address().port, '/everything/sse');
      try {
        await waitFor(() => stream.events.some((e) => e.event === 'endpoint'), 15_000, 'the endpoint event');
        const endpoint = stream.events.find((e) => e.event === 'endpoint')!.data;
        const extra = await post(gw.url(endpoint), EXTRA_X);
        expect(extra.status).to.equal(400);
        expect(extra.json).to.deep.equal({ jsonrpc: '2.0', id: 1, error: { code: -32600, message: unexpected('x') } });
        const array = await post(gw.url(endpoint), PARAMS_ARRAY);
        expect(array.status).to.equal(400);
        expect(array.json).to.deep.equal({ jsonrpc: '2.0', id: 4, error: { code: -32602, message: notObject('ping', 'an array') } });
      } finally {
        stream.close();
      }
    });
  });

  describe('POST /{name}/mcp/tools/call', () => {
    it('refuses an unexpected body member and arguments that are not an object', async () => {
      const extra = await post(gw.url('/everything/mcp/tools/call'), '{"name":"echo","arguments":{"message":"m"},"__proto__":{}}');
      expect(extra.status).to.equal(400);
      expect(extra.json).to.deep.equal({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid body: unexpected member "__proto__"; send only {"name": "<tool>", "arguments": {...}}' } });
      const array = await post(gw.url('/everything/mcp/tools/call'), '{"name":"echo","arguments":["m"]}');
      expect(array.status).to.equal(400);
      expect(array.json).to.deep.equal({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32602, message: 'Invalid params: "arguments" must be an object of named arguments, got an array (MCP has no by-position arguments)' },
      });
    });
  });
});
