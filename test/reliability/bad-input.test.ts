import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authOAuth2Pkce, proxyJsonRpc, transportSse, transportStdio } from '../../index.js';
import { everythingEntry, startGateway, type TestGateway } from '../helpers/gateway.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, repoRoot } from '../helpers/paths.js';
import { echoOnce, health } from './gateway-probe.js';
import { openSession } from './load-driver.js';
import { rawRequest, type RawAnswer, type RawRequest } from './raw-http.js';

/** What the corpus needs besides the gateway: a fresh login state, and a live session of another server. */
interface Setup {
  port: number;
  /** a `state` of a login just started at /secure/auth/login */
  state(): Promise<string>;
  /** the Mcp-Session-Id of a session opened on the "other" server */
  otherSession: string;
  /** what the provider's token endpoint received */
  tokenRequests: URLSearchParams[];
}

interface Case {
  name: string;
  request: RawRequest | ((setup: Setup) => Promise<RawRequest>);
  status: number | number[];
  /** the JSON-RPC error code of the answer (each element, for a batch answer) */
  rpc?: number;
  /** the gateway's own error code, in {"error": {"code"}} */
  code?: string;
  /** a pattern the body must match */
  body?: RegExp;
  check?: (answer: RawAnswer, setup: Setup) => void;
}

const MCP = '/everything/mcp';
const rpc = (value: unknown): string => JSON.stringify(value);
const post = (target: string, body: string | Buffer, headers: Record<string, string | null> = {}): RawRequest => ({
  method: 'POST',
  target,
  body,
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
});
const postMcp = (body: string | Buffer, headers: Record<string, string | null> = {}): RawRequest => post(MCP, body, headers);
const call = (id: unknown, name: string, args: unknown): string => rpc({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const nested = (depth: number, open: string, close: string, inner = ''): string => open.repeat(depth) + inner + close.repeat(depth);
const INVALID_STATE = /Invalid or expired state parameter/;

/** Headers the gateway sends; anything else in an answer was put there by the request. */
const KNOWN_HEADERS = new Set([
  'content-type', 'content-length', 'date', 'connection', 'keep-alive', 'allow', 'www-authenticate', 'cache-control', 'pragma',
  'x-content-type-options', 'mcp-session-id', 'transfer-encoding', 'location', 'x-accel-buffering',
]);

const callback = (query: string): RawRequest => ({ target: `/secure/auth/callback?${query}` });
const withState = (rest: (state: string) => string) => async (setup: Setup): Promise<RawRequest> => callback(rest(await setup.state()));

const corpus: Case[] = [
  // broken JSON
  { name: 'an unterminated object', request: postMcp('{"jsonrpc":"2.0","id":1,'), status: 400, rpc: -32700 },
  { name: 'garbage after the JSON', request: postMcp('{"jsonrpc":"2.0","id":1,"method":"ping"}xyz'), status: 400, rpc: -32700 },
  { name: 'an empty body', request: postMcp(''), status: 400, rpc: -32700 },
  { name: 'single-quoted JSON', request: postMcp("{'jsonrpc':'2.0','id':1,'method':'ping'}"), status: 400, rpc: -32700 },
  { name: 'a NaN literal', request: postMcp('{"jsonrpc":"2.0","id":NaN,"method":"ping"}'), status: 400, rpc: -32700 },
  { name: 'bytes that are not UTF-8 JSON', request: postMcp(Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x00])), status: 400, rpc: -32700 },
  // wrong types
  { name: 'the body null', request: postMcp('null'), status: 400, rpc: -32600 },
  { name: 'the body a number', request: postMcp('42'), status: 400, rpc: -32600 },
  { name: 'the body a string', request: postMcp('"tools/list"'), status: 400, rpc: -32600 },
  { name: 'the body true', request: postMcp('true'), status: 400, rpc: -32600 },
  { name: 'an empty object', request: postMcp('{}'), status: 400, rpc: -32600 },
  { name: 'method a number', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: 5 })), status: 400, rpc: -32600 },
  { name: 'method null', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: null })), status: 400, rpc: -32600 },
  { name: 'method an array', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: ['tools/list'] })), status: 400, rpc: -32600 },
  { name: 'jsonrpc "1.0"', request: postMcp(rpc({ jsonrpc: '1.0', id: 1, method: 'tools/list' })), status: 400, rpc: -32600 },
  {
    name: 'jsonrpc missing is answered at once, served as /sse does or refused',
    request: postMcp(rpc({ id: 'no-version', method: 'tools/list' })),
    status: [200, 400],
    check: (a) => {
      const body = JSON.parse(a.body) as { id: unknown; error?: { code: number } };
      if (a.status === 400) expect(body.error!.code).to.equal(-32600);
      else expect(body.id).to.equal('no-version');
    },
  },
  { name: 'jsonrpc the number 2', request: postMcp(rpc({ jsonrpc: 2, id: 1, method: 'tools/list' })), status: 400, rpc: -32600 },
  // invalid ids
  { name: 'id an object', request: postMcp(rpc({ jsonrpc: '2.0', id: { a: 1 }, method: 'tools/list' })), status: 400, rpc: -32600 },
  { name: 'id an array', request: postMcp(rpc({ jsonrpc: '2.0', id: [1], method: 'tools/list' })), status: 400, rpc: -32600 },
  { name: 'id true', request: postMcp(rpc({ jsonrpc: '2.0', id: true, method: 'tools/list' })), status: 400, rpc: -32600 },
  { name: 'id null', request: postMcp(rpc({ jsonrpc: '2.0', id: null, method: 'tools/list' })), status: 400, rpc: -32600 },
  { name: 'id 1e400 (not a finite number)', request: postMcp('{"jsonrpc":"2.0","id":1e400,"method":"tools/list"}'), status: 400, rpc: -32600 },
  {
    name: 'id a 64 KB string is kept as sent',
    request: postMcp(rpc({ jsonrpc: '2.0', id: 'i'.repeat(65_536), method: 'tools/list' })),
    status: 200,
    check: (a) => expect((JSON.parse(a.body) as { id: string }).id).to.equal('i'.repeat(65_536)),
  },
  // unknown methods, tools and params
  { name: 'an unknown method', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: 'no/such/method' })), status: 200, rpc: -32601 },
  { name: 'an unknown method as a notification', request: postMcp(rpc({ jsonrpc: '2.0', method: 'notifications/no-such-thing' })), status: 202 },
  { name: 'a response nobody asked for', request: postMcp(rpc({ jsonrpc: '2.0', id: 'nobody-asked', result: {} })), status: 202 },
  { name: 'an unknown tool', request: postMcp(call(1, 'no-such-tool', {})), status: 200, body: /no-such-tool/ },
  { name: 'params a string', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: 'echo' })), status: 400, rpc: -32600 },
  { name: 'params a number', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: 5 })), status: 400, rpc: -32600 },
  { name: 'params an array (by position: MCP has none)', request: postMcp(rpc({ jsonrpc: '2.0', id: 1, method: 'ping', params: [] })), status: 400, rpc: -32602 },
  { name: 'a member JSON-RPC does not have', request: postMcp('{"jsonrpc":"2.0","id":1,"method":"ping","__proto__":{}}'), status: 400, rpc: -32600, body: /unexpected member \\"__proto__\\"/ },
  { name: 'echo with a number for its message', request: postMcp(call(1, 'echo', { message: 5 })), status: 200, body: /message/ },
  // batches
  { name: 'a batch without protocol version 2025-03-26', request: postMcp(rpc([{ jsonrpc: '2.0', id: 1, method: 'ping' }])), status: 400, rpc: -32600 },
  { name: 'an empty batch', request: postMcp('[]', { 'mcp-protocol-version': '2025-03-26' }), status: 400, rpc: -32600 },
  {
    name: 'a batch of non-objects',
    request: postMcp('[1, "x", null]', { 'mcp-protocol-version': '2025-03-26' }),
    status: 200,
    check: (a) => {
      const items = JSON.parse(a.body) as { error: { code: number } }[];
      expect(items).to.have.length(3);
      for (const item of items) expect(item.error.code).to.equal(-32600);
    },
  },
  {
    name: 'initialize inside a batch',
    request: postMcp(rpc([{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }]), { 'mcp-protocol-version': '2025-03-26' }),
    status: 200,
    check: (a) => expect((JSON.parse(a.body) as { error: { code: number } }[])[0]!.error.code).to.equal(-32600),
  },
  // huge bodies
  {
    name: 'a 5 MiB body (over the 4 MiB limit)',
    request: postMcp(call(1, 'echo', { message: 'x'.repeat(5 * 1024 * 1024) })),
    status: 413,
    code: 'FMCP_ERR_BODY_TOO_LARGE',
    check: (a) => expect(JSON.parse(a.body)).to.deep.equal({
      error: { code: 'FMCP_ERR_BODY_TOO_LARGE', message: 'POST /everything/mcp: the request body is larger than the limit of 4 MiB (4194304 bytes): send a smaller body' },
    }),
  },
  {
    name: 'a declared Content-Length of 10 GB',
    request: { method: 'POST', target: MCP, headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 ** 3) }, body: '{"jsonrpc":"2.0"' },
    status: 413,
    code: 'FMCP_ERR_BODY_TOO_LARGE',
  },
  {
    name: 'a chunked body over the limit',
    request: { method: 'POST', target: MCP, headers: { 'content-type': 'application/json' }, chunks: Array.from({ length: 5 }, () => 'x'.repeat(1024 * 1024)) },
    status: 413,
    code: 'FMCP_ERR_BODY_TOO_LARGE',
  },
  {
    name: 'a body just under the limit is served',
    // 4 MB in and back out: give a loaded machine time; an unanswered case still fails, later
    request: { ...postMcp(call(1, 'echo', { message: 'y'.repeat(4 * 1024 * 1024 - 200) })), timeoutMs: 25_000 },
    status: 200,
    check: (a) => expect((JSON.parse(a.body) as { result: { content: { text: string }[] } }).result.content[0]!.text).to.have.length(4 * 1024 * 1024 - 200 + 6),
  },
  { name: 'a body over the 64 KB limit of /auth/refresh', request: post('/secure/auth/refresh', rpc({ refresh_token: 'r'.repeat(70_000) })), status: 413, code: 'FMCP_ERR_BODY_TOO_LARGE' },
  // deep nesting
  { name: '100,000 nested arrays as the body', request: postMcp(nested(100_000, '[', ']')), status: 400, rpc: -32600 },
  { name: '100,000 nested objects as the body', request: postMcp(nested(100_000, '{"a":', '}', '1')), status: 400, rpc: -32600 },
  {
    name: '100,000 nested arrays inside the arguments of a call',
    request: postMcp(`{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"name":"echo","arguments":{"message":"m","deep":${nested(100_000, '[', ']')}}}}`),
    status: [200, 400],
    check: (a) => {
      const body = JSON.parse(a.body) as { id: unknown; error?: { code: number }; result?: unknown };
      // either the gateway refuses it as a JSON-RPC error, or the server answers it: both keep the call's id
      if (a.status === 400) expect(body.error!.code).to.be.oneOf([-32600, -32700]);
      else expect(body.id).to.equal('deep');
    },
  },
  { name: '100,000 nested arrays to POST /sse', request: post('/everything/sse', nested(100_000, '[', ']')), status: 400, rpc: -32600 },
  { name: '100,000 nested objects to /mcp/tools/call', request: post('/everything/mcp/tools/call', nested(100_000, '{"a":', '}', '1')), status: 400, rpc: -32600 },
  // odd paths
  { name: 'GET /../health', request: { target: '/../health' }, status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'POST /everything/../everything/mcp', request: post('/everything/../everything/mcp', call(1, 'echo', { message: 'x' })), status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'POST /%2e%2e/mcp', request: post('/%2e%2e/mcp', call(1, 'echo', { message: 'x' })), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  { name: 'POST /everything%2Fmcp (an encoded slash)', request: post('/everything%2Fmcp', call(1, 'echo', { message: 'x' })), status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'POST /every%2Fthing/mcp', request: post('/every%2Fthing/mcp', call(1, 'echo', { message: 'x' })), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  { name: 'POST /everything%2F..%2F..%2Fetc%2Fpasswd/mcp', request: post('/everything%2F..%2F..%2Fetc%2Fpasswd/mcp', '{}'), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  { name: 'a name that is not valid percent-encoding (%ZZ)', request: post('/%ZZ/mcp', '{}'), status: 400, code: 'FMCP_ERR_BAD_REQUEST' },
  { name: 'a name with a cut UTF-8 sequence (%E0%A4%A)', request: post('/%E0%A4%A/mcp', '{}'), status: 400, code: 'FMCP_ERR_BAD_REQUEST' },
  { name: 'a name with an encoded NUL', request: post('/every%00thing/mcp', '{}'), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  { name: 'an empty name (//mcp)', request: post('//mcp', '{}'), status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'a trailing slash (/everything/mcp/)', request: post('/everything/mcp/', '{}'), status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'a doubled slash (/everything//mcp)', request: post('/everything//mcp', '{}'), status: 404, code: 'FMCP_ERR_NOT_FOUND' },
  { name: 'an 8 KB name', request: post(`/${'n'.repeat(8 * 1024)}/mcp`, '{}'), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  { name: 'a 100 KB path', request: post(`/${'n'.repeat(100 * 1024)}/mcp`, '{}'), status: 431, code: 'FMCP_ERR_HEADERS_TOO_LARGE' },
  { name: 'OPTIONS * (asterisk form)', request: { method: 'OPTIONS', target: '*' }, status: 404 },
  { name: 'an absolute-form target on another host', request: { target: 'http://evil.example/health' }, status: [400, 403, 404] },
  { name: 'a raw space in the path', request: { raw: 'GET /every thing/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' }, status: 400 },
  // unknown packages and methods
  { name: 'an unknown package', request: post('/nope/mcp', call(1, 'echo', { message: 'x' })), status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  {
    name: 'an unknown package named <script>',
    request: post('/%3Cscript%3Ealert(1)%3C%2Fscript%3E/mcp', '{}'),
    status: 404,
    code: 'FMCP_ERR_UNKNOWN_SERVER',
    check: (a) => expect(a.headers['content-type']).to.match(/^application\/json/),
  },
  { name: 'PUT on /mcp', request: { method: 'PUT', target: MCP, body: '{}' }, status: 405, code: 'FMCP_ERR_METHOD_NOT_ALLOWED', check: (a) => expect(a.headers.allow).to.include('POST') },
  { name: 'PATCH on /health', request: { method: 'PATCH', target: '/health', body: '{}' }, status: 405 },
  // Content-Type and Accept
  { name: 'Content-Type text/plain', request: postMcp(call(1, 'echo', { message: 'x' }), { 'content-type': 'text/plain' }), status: 415, rpc: -32600 },
  { name: 'Content-Type form-urlencoded', request: postMcp('a=1', { 'content-type': 'application/x-www-form-urlencoded' }), status: 415, rpc: -32600 },
  { name: 'Content-Type application/jsonp', request: postMcp(call(1, 'echo', { message: 'x' }), { 'content-type': 'application/jsonp' }), status: 415, rpc: -32600 },
  { name: 'Content-Type multipart/form-data', request: postMcp(call(1, 'echo', { message: 'x' }), { 'content-type': 'multipart/form-data; boundary=x' }), status: 415, rpc: -32600 },
  { name: 'no Content-Type is read as JSON', request: postMcp(call(1, 'echo', { message: 'no-type' }), { 'content-type': null }), status: 200, body: /Echo: no-type/ },
  { name: 'Content-Type with a charset', request: postMcp(call(1, 'echo', { message: 'cs' }), { 'content-type': 'application/json; charset=utf-8' }), status: 200, body: /Echo: cs/ },
  { name: 'Accept text/html only', request: postMcp(call(1, 'echo', { message: 'x' }), { accept: 'text/html' }), status: 406, rpc: -32600 },
  { name: 'no Accept is answered as JSON', request: postMcp(call(1, 'echo', { message: 'no-accept' }), { accept: null }), status: 200, body: /Echo: no-accept/ },
  {
    name: 'Accept text/event-stream only is answered as an event stream',
    request: postMcp(call(1, 'echo', { message: 'sse-only' }), { accept: 'text/event-stream' }),
    status: 200,
    body: /Echo: sse-only/,
    check: (a) => expect(a.headers['content-type']).to.match(/^text\/event-stream/),
  },
  // Mcp-Session-Id and MCP-Protocol-Version
  { name: 'an unknown Mcp-Session-Id', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-session-id': 'f'.repeat(32) }), status: 404, rpc: -32001 },
  { name: 'an empty Mcp-Session-Id', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-session-id': '' }), status: [400, 404] },
  { name: 'an 8 KB Mcp-Session-Id', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-session-id': 's'.repeat(8192) }), status: 404, rpc: -32001 },
  { name: 'a Mcp-Session-Id with bytes beyond ASCII', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-session-id': 'sess\u00e9\u00ff' }), status: [400, 404] },
  {
    name: 'the Mcp-Session-Id of a session on another server',
    request: async (setup) => postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-session-id': setup.otherSession, 'mcp-protocol-version': '2025-11-25' }),
    status: 404,
    rpc: -32001,
  },
  { name: 'an unknown MCP-Protocol-Version', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-protocol-version': '1999-01-01' }), status: 400, rpc: -32022 },
  { name: 'a MCP-Protocol-Version with <script>', request: postMcp(call(1, 'echo', { message: 'x' }), { 'mcp-protocol-version': '<script>alert(1)</script>' }), status: 400, rpc: -32022 },
  { name: 'GET /mcp without a session', request: { target: MCP, headers: { accept: 'text/event-stream' } }, status: 400, rpc: -32600 },
  { name: 'GET /mcp that does not accept an event stream', request: { target: MCP, headers: { accept: 'application/json', 'mcp-session-id': 'x' } }, status: 406 },
  { name: 'DELETE /mcp without a session', request: { method: 'DELETE', target: MCP }, status: 400, rpc: -32600 },
  { name: 'DELETE /mcp of an unknown session', request: { method: 'DELETE', target: MCP, headers: { 'mcp-session-id': 'nope' } }, status: 404, rpc: -32001 },
  // the streamed call and the legacy transport
  { name: 'broken JSON to POST /sse', request: post('/everything/sse', '{"id":'), status: 400, rpc: -32700 },
  { name: 'a notification to POST /sse', request: post('/everything/sse', rpc({ jsonrpc: '2.0', method: 'notifications/initialized' })), status: 400, rpc: -32600 },
  { name: 'a batch to POST /sse', request: post('/everything/sse', rpc([{ jsonrpc: '2.0', id: 1, method: 'ping' }])), status: 400, rpc: -32600 },
  { name: 'POST /messages without sessionId', request: post('/everything/messages', rpc({ jsonrpc: '2.0', id: 1, method: 'ping' })), status: 400, code: 'FMCP_ERR_BAD_REQUEST' },
  { name: 'POST /messages of an unknown session', request: post('/everything/messages?sessionId=nope', rpc({ jsonrpc: '2.0', id: 1, method: 'ping' })), status: 404, code: 'FMCP_ERR_SESSION_UNKNOWN' },
  { name: '/mcp/tools/call with a number for a name', request: post('/everything/mcp/tools/call', rpc({ name: 5 })), status: 400, rpc: -32600 },
  { name: '/mcp/tools/call with broken JSON', request: post('/everything/mcp/tools/call', '{"name":'), status: 400, rpc: -32700 },
  // the OAuth callback: missing, forged and injected state and code
  { name: 'a callback without state', request: callback('code=abc'), status: 400, code: 'FMCP_ERR_BAD_REQUEST', body: INVALID_STATE },
  { name: 'a forged state', request: callback('state=Q2hvb3NlIGEgcmFuZG9tIHN0YXRlIHRoYXQgd2FzIG5ldmVyIGlzc3VlZA&code=abc'), status: 400, code: 'FMCP_ERR_BAD_REQUEST', body: INVALID_STATE },
  {
    name: 'a state carrying CR/LF and a Set-Cookie header',
    request: callback('state=x%0D%0ASet-Cookie:%20evil=1%0D%0AX-Injected:%201&code=abc'),
    status: 400,
    body: INVALID_STATE,
    check: (a) => expect(a.head).to.not.match(/evil=1|x-injected/i),
  },
  { name: 'a state with raw CR/LF on the request line', request: { raw: 'GET /secure/auth/callback?state=x\r\nSet-Cookie: evil=1\r\n\r\n' }, status: 400, check: (a) => expect(a.head).to.not.match(/evil=1/) },
  {
    name: 'a state with quotes and <script>',
    request: callback(`state=${encodeURIComponent('"><script>alert(1)</script>')}&code=abc`),
    status: 400,
    body: INVALID_STATE,
    check: (a) => {
      expect(a.body).to.not.include('<script>');
      expect(a.headers['content-type']).to.match(/^application\/json/);
    },
  },
  { name: 'an 8 KB state', request: callback(`state=${'s'.repeat(8192)}&code=abc`), status: 400, body: INVALID_STATE },
  { name: 'two states', request: callback('state=a&state=b&code=abc'), status: 400, body: INVALID_STATE },
  { name: 'a callback for a package without OAuth', request: { target: '/everything/auth/callback?state=x&code=y' }, status: 400, body: /Package does not require OAuth authentication/ },
  { name: 'a login for an unknown package', request: { target: '/nope/auth/login' }, status: 404, code: 'FMCP_ERR_UNKNOWN_SERVER' },
  {
    name: 'a valid state with a code carrying CR/LF and a header',
    request: withState((state) => `state=${state}&code=abc%0D%0AX-Injected:%201`),
    status: 400,
    body: /invalid_grant/,
    check: (a, setup) => {
      expect(a.head).to.not.match(/x-injected/i);
      // the code went to the provider as one form field, unchanged
      expect(setup.tokenRequests.at(-1)!.get('code')).to.equal('abc\r\nX-Injected: 1');
    },
  },
  {
    name: 'a valid state with a code carrying <script>',
    request: withState((state) => `state=${state}&code=${encodeURIComponent('<script>alert(1)</script>')}`),
    status: 400,
    check: (a) => {
      expect(a.body).to.not.include('<script>');
      expect(a.headers['content-type']).to.match(/^application\/json/);
    },
  },
  {
    name: 'a valid state with a provider error carrying CR/LF and <script>',
    request: withState((state) => `state=${state}&error=access_denied&error_description=${encodeURIComponent('<script>alert(1)</script>\r\nX-Evil: 1')}`),
    status: 400,
    body: /access_denied/,
    check: (a) => {
      expect(a.head).to.not.match(/x-evil/i);
      expect(a.headers['content-type']).to.match(/^application\/json/);
    },
  },
  { name: 'a valid state without a code', request: withState((state) => `state=${state}`), status: 400, body: /no \\"code\\" parameter/ },
  {
    name: 'a login that asks for another redirect_uri',
    request: { target: '/secure/auth/login?redirect_uri=http%3A%2F%2Fevil.example%2Fcb&state=chosen' },
    status: 302,
    check: (a) => {
      const location = new URL(a.headers.location!);
      expect(location.searchParams.get('redirect_uri')).to.match(/^http:\/\/localhost:\d+\/secure\/auth\/callback$/);
      expect(location.searchParams.get('state')).to.not.equal('chosen');
    },
  },
  // Authorization, Host and Origin
  { name: 'no Bearer token on a guarded server', request: post('/secure/mcp', call(1, 'whoami', {})), status: 401, check: (a) => expect(a.headers['www-authenticate']).to.match(/^Bearer /) },
  { name: '"Bearer" without a token', request: post('/secure/mcp', call(1, 'whoami', {}), { authorization: 'Bearer' }), status: 401 },
  { name: 'a Bearer token with a space inside', request: post('/secure/mcp', call(1, 'whoami', {}), { authorization: 'Bearer a b' }), status: 401, check: (a) => expect(a.headers['www-authenticate']).to.include('invalid_request') },
  { name: 'Basic credentials', request: post('/secure/mcp', call(1, 'whoami', {}), { authorization: 'Basic dXNlcjpwYXNz' }), status: 401 },
  { name: 'a Bearer token with a quote and <script>', request: post('/secure/mcp', call(1, 'whoami', {}), { authorization: 'Bearer "><script>' }), status: 401, check: (a) => expect(a.headers['www-authenticate']).to.not.include('<script>') },
  { name: 'a 20 KB Authorization header', request: post('/secure/mcp', call(1, 'whoami', {}), { authorization: `Bearer ${'t'.repeat(20_000)}` }), status: 431, code: 'FMCP_ERR_HEADERS_TOO_LARGE' },
  { name: 'a foreign Origin', request: postMcp(call(1, 'echo', { message: 'x' }), { origin: 'http://evil.example' }), status: 403, code: 'FMCP_ERR_FORBIDDEN' },
  { name: 'Origin "null"', request: postMcp(call(1, 'echo', { message: 'x' }), { origin: 'null' }), status: 403, code: 'FMCP_ERR_FORBIDDEN' },
  { name: 'a foreign Host (DNS rebinding)', request: postMcp(call(1, 'echo', { message: 'x' }), { host: 'evil.example' }), status: 403, code: 'FMCP_ERR_FORBIDDEN' },
  { name: 'no Host header', request: { raw: 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n' }, status: 400 },
  // malformed HTTP
  { name: 'a garbage request line', request: { raw: 'HELLO THERE\r\n\r\n' }, status: 400, code: 'FMCP_ERR_BAD_HTTP' },
  { name: 'Content-Length and Transfer-Encoding together', request: { raw: `POST ${MCP} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n` }, status: 400 },
  { name: 'a Content-Length that is not a number', request: { raw: `POST ${MCP} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n` }, status: 400 },
  { name: 'a negative Content-Length', request: { raw: `POST ${MCP} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n` }, status: 400 },
  { name: 'two different Content-Lengths', request: { raw: `POST ${MCP} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}` }, status: 400 },
  { name: 'a header name with a space', request: { raw: 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n' }, status: 400 },
  { name: 'a NUL inside a header value', request: { raw: 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Thing: a\u0000b\r\n\r\n' }, status: 400 },
  { name: 'an invalid chunk size', request: { raw: `POST ${MCP} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n` }, status: 400 },
  { name: 'HTTP/9.9 on the request line', request: { raw: 'GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n' }, status: [400, 505] },
];

describe('reliability: a corpus of malformed requests', function () {
  this.timeout(60_000);
  let gw: TestGateway;
  let provider: Server;
  const tokenRequests: URLSearchParams[] = [];
  let setup: Setup;

  before(async () => {
    // the provider's token endpoint: records each request and refuses every code, as for a forged one
    provider = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        tokenRequests.push(new URLSearchParams(Buffer.concat(parts).toString('utf8')));
        const body = JSON.stringify({ error: 'invalid_grant', error_description: 'the code is not valid' });
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      });
    });
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()));
    const tokenUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/token`;
    gw = await startGateway(
      {
        everything: everythingEntry(),
        other: { command: process.execPath, args: [fixture('rel-big-line.mjs')] },
        secure: {
          command: process.execPath,
          args: [fixture('rel-env-hash.mjs')],
          auth: {
            type: 'oauth2',
            flow: 'pkce',
            authorization_url: 'http://127.0.0.1:9/authorize',
            token_url: tokenUrl,
            scopes: ['read'],
            client_id_env: 'REL_CLIENT_ID',
            env_var_name: 'REL_ACCESS_TOKEN',
            validate: 'none',
          },
        },
      },
      { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: { REL_CLIENT_ID: 'rel-client' } })] },
    );
    const port = gw.kernel.address().port;
    const otherSession = (await openSession(port, '/other/mcp', undefined, 10_000))['mcp-session-id']!;
    setup = {
      port,
      otherSession,
      tokenRequests,
      state: async () => {
        const answer = await rawRequest(port, { target: '/secure/auth/login' });
        expect(answer.status).to.equal(302);
        return new URL(answer.headers.location!).searchParams.get('state')!;
      },
    };
  });
  after(async () => {
    await gw?.stop();
    await new Promise<void>((r) => provider?.close(() => r()));
  });

  it('is as large as README.md says ("N malformed requests")', () => {
    const stated = readFileSync(join(repoRoot, 'README.md'), 'utf8').match(/(\d+) malformed requests/);
    expect(stated, 'README.md names the size of the corpus').to.not.equal(null);
    expect(corpus.length).to.equal(Number(stated![1]));
  });

  for (const c of corpus) {
    it(`${c.name}: ${Array.isArray(c.status) ? c.status.join(' or ') : c.status}${c.rpc !== undefined ? ` (JSON-RPC ${c.rpc})` : ''}${c.code ? ` ${c.code}` : ''}`, async () => {
      const spec = typeof c.request === 'function' ? await c.request(setup) : c.request;
      // a case the gateway leaves unanswered fails in 5 s rather than waiting for the call timeout
      const answer = await rawRequest(setup.port, { timeoutMs: 5000, ...spec });
      const what = `${answer.status} ${answer.body.slice(0, 400)}`;
      if (Array.isArray(c.status)) expect(answer.status, what).to.be.oneOf(c.status);
      else expect(answer.status, what).to.equal(c.status);
      for (const [name] of answer.headerLines) expect(KNOWN_HEADERS.has(name), `unexpected header "${name}" in ${answer.head}`).to.equal(true);
      if (answer.status >= 400 && answer.body !== '') {
        expect(answer.headers['content-type'], `an error body is JSON, never HTML: ${answer.head}`).to.match(/^application\/json/);
      }
      if (c.rpc !== undefined) {
        const body = JSON.parse(answer.body) as { jsonrpc?: string; error?: { code: number } };
        expect(body.jsonrpc, what).to.equal('2.0');
        expect(body.error?.code, what).to.equal(c.rpc);
      }
      if (c.code !== undefined) expect((JSON.parse(answer.body) as { error?: { code?: string } }).error?.code, what).to.equal(c.code);
      if (c.body) expect(answer.body).to.match(c.body);
      c.check?.(answer, setup);
    });
  }

  it('still serves normal calls after the corpus, on every server', async () => {
    const port = setup.port;
    await echoOnce(port, 'everything');
    await echoOnce(port, 'other');
    const h = await health(port);
    expect(h.status).to.equal('ok');
    for (const name of ['everything', 'other']) {
      expect(h.servers[name]!.ready).to.equal(true);
      expect(h.servers[name]!.inFlight).to.equal(0);
      expect(h.servers[name]!.restarts).to.equal(0);
    }
    const secured = await rawRequest(port, post('/secure/mcp', call('w', 'whoami', {}), { authorization: 'Bearer still-works' }));
    expect(secured.status).to.equal(200);
    expect(secured.body).to.include('"id":"w"');
  });
});
