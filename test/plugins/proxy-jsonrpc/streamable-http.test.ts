import { expect } from 'chai';
import { fixture } from '../../helpers/paths.js';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { request } from '../../helpers/request.js';

const mini = () => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')] });
const echo = (id: unknown, message: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });

describe('proxy-jsonrpc over raw HTTP', () => {
  let gw: TestGateway;
  let port: number;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry(), mini: mini() }, { kernel: { bodyLimit: 64 * 1024 } });
    port = gw.kernel.address().port;
  });
  after(() => gw.stop());

  async function initialize(version = '2025-11-25'): Promise<string> {
    const res = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    expect(res.status).to.equal(200);
    return res.headers.get('mcp-session-id')!;
  }

  describe('the seed\'s bare call', () => {
    it('answers tools/list without a handshake, with the client\'s own id', async () => {
      const res = await postJson(gw.url('/everything/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { accept: '*/*' });
      expect(res.status).to.equal(200);
      const body = res.json as { id: number; result: { tools: unknown[] } };
      expect(body.id).to.equal(1);
      expect(body.result.tools).to.be.an('array').that.is.not.empty;
    });

    it('gives 100 clients that all use id 1 each their own answer', async () => {
      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => postJson(gw.url('/mini/mcp'), echo(1, `client-${i}`))));
      answers.forEach((res, i) => {
        expect(res.status).to.equal(200);
        expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `client-${i}` }] } });
      });
    });

    it('keeps string ids as strings', async () => {
      const res = await postJson(gw.url('/mini/mcp'), echo('abc-1', 'x'));
      expect((res.json as { id: unknown }).id).to.equal('abc-1');
    });

    it('answers with SSE when the client accepts only text/event-stream', async () => {
      const res = await postJson(gw.url('/mini/mcp'), echo(5, 'over sse'), { accept: 'text/event-stream' });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
      expect(res.text).to.include('"text":"over sse"');
    });
  });

  describe('Streamable HTTP sessions', () => {
    it('answers initialize from the kept server answer with a random session id', async () => {
      const a = await initialize();
      const b = await initialize();
      expect(a).to.match(/^[0-9a-f]{32}$/);
      expect(a).to.not.equal(b);
    });

    it('negotiates down to an older version the client asks for', async () => {
      const res = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      expect((res.json as { result: { protocolVersion: string; serverInfo: { name: string } } }).result).to.include({ protocolVersion: '2025-03-26' });
      expect((res.json as { result: { serverInfo: { name: string } } }).result.serverInfo.name).to.equal('proxy-mini');
    });

    it('refuses initialize inside a live session with 400 -32600, and the session keeps working', async () => {
      const session = await initialize();
      const sessions = async (): Promise<number> => ((await (await fetch(gw.url('/health'))).json()) as { servers: { mini: { sessions: number } } }).servers.mini.sessions;
      const before = await sessions();
      const again = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 7, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }, { 'mcp-session-id': session });
      expect(again.status).to.equal(400);
      expect(again.headers.get('mcp-session-id')).to.equal(null);
      expect(again.json).to.deep.equal({
        jsonrpc: '2.0',
        id: 7,
        error: { code: -32600, message: 'Invalid Request: this session (Mcp-Session-Id) is already initialized; to start a new session, send initialize without the Mcp-Session-Id header' },
      });
      expect(await sessions()).to.equal(before);
      const call = await postJson(gw.url('/mini/mcp'), echo(8, 'still mine'), { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
      expect(call.json).to.deep.equal({ jsonrpc: '2.0', id: 8, result: { content: [{ type: 'text', text: 'still mine' }] } });
    });

    it('refuses initialize without protocolVersion, capabilities or clientInfo with 400 -32602 naming what is missing, opening no session', async () => {
      const required = '(or it is not the right type); the MCP spec requires all three: "protocolVersion" (a string such as "2025-11-25"), "capabilities" (an object, {} for none) and "clientInfo" ({"name": …, "version": …})';
      const bare = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
      expect(bare.status).to.equal(400);
      expect(bare.headers.get('mcp-session-id')).to.equal(null);
      expect(bare.json).to.deep.equal({
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32602, message: `Invalid params: initialize is missing "protocolVersion", "capabilities", "clientInfo" ${required}` },
      });
      const noVersion = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: 20251125, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      expect(noVersion.status).to.equal(400);
      expect((noVersion.json as { error: { message: string } }).error.message).to.equal(`Invalid params: initialize is missing "protocolVersion" ${required}`);
      const noParams = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 3, method: 'initialize' });
      expect(noParams.status).to.equal(400);
      expect((noParams.json as { error: { code: number } }).error.code).to.equal(-32602);
    });

    it('answers a notification and a stray response with 202', async () => {
      const session = await initialize();
      const n = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': session });
      expect(n.status).to.equal(202);
      expect(n.text).to.equal('');
      const r = await postJson(gw.url('/mini/mcp'), { jsonrpc: '2.0', id: 'fmcp-999', result: {} }, { 'mcp-session-id': session });
      expect(r.status).to.equal(202);
    });

    it('answers 404 for an unknown session and for a session of another package', async () => {
      const res = await postJson(gw.url('/mini/mcp'), echo(1, 'x'), { 'mcp-session-id': 'f'.repeat(32) });
      expect(res.status).to.equal(404);
      const session = await initialize();
      const other = await postJson(gw.url('/everything/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': session });
      expect(other.status).to.equal(404);
    });

    it('checks MCP-Protocol-Version', async () => {
      const res = await postJson(gw.url('/mini/mcp'), echo(1, 'x'), { 'mcp-protocol-version': '1999-01-01' });
      expect(res.status).to.equal(400);
      expect(JSON.stringify(res.json)).to.include('1999-01-01');
    });

    it('accepts batches only in 2025-03-26', async () => {
      const old = await initialize('2025-03-26');
      const ok = await postJson(gw.url('/mini/mcp'), [echo(1, 'one'), echo(2, 'two'), { jsonrpc: '2.0', method: 'notifications/initialized' }], { 'mcp-session-id': old });
      expect(ok.status).to.equal(200);
      const results = (ok.json as { id: number; result: { content: { text: string }[] } }[]).sort((a, b) => a.id - b.id);
      expect(results.map((r) => r.result.content[0]!.text)).to.deep.equal(['one', 'two']);
      const current = await initialize('2025-11-25');
      const refused = await postJson(gw.url('/mini/mcp'), [echo(1, 'one')], { 'mcp-session-id': current });
      expect(refused.status).to.equal(400);
      expect((refused.json as { error: { code: number } }).error.code).to.equal(-32600);
    });

    it('GET without Accept: text/event-stream is 406, without a session 400; DELETE ends the session', async () => {
      const session = await initialize();
      const noAccept = await request(port, { method: 'GET', path: '/mini/mcp', headers: { 'mcp-session-id': session, accept: 'application/json' } });
      expect(noAccept.status).to.equal(406);
      const noSession = await request(port, { method: 'GET', path: '/mini/mcp', headers: { accept: 'text/event-stream' } });
      expect(noSession.status).to.equal(400);
      const del = await request(port, { method: 'DELETE', path: '/mini/mcp', headers: { 'mcp-session-id': session } });
      expect(del.status).to.equal(204);
      const again = await request(port, { method: 'DELETE', path: '/mini/mcp', headers: { 'mcp-session-id': session } });
      expect(again.status).to.equal(404);
    });
  });

  describe('bad input', () => {
    const cases: { name: string; body: string; headers?: Record<string, string>; status: number; code?: number }[] = [
      { name: 'invalid JSON', body: '{"jsonrpc":', status: 400, code: -32700 },
      { name: 'a JSON string', body: '"hello"', status: 400, code: -32600 },
      { name: 'a number', body: '42', status: 400, code: -32600 },
      { name: 'no method', body: '{"jsonrpc":"2.0","id":1}', status: 400, code: -32600 },
      { name: 'a method that is not a string', body: '{"jsonrpc":"2.0","id":1,"method":5}', status: 400, code: -32600 },
      { name: 'an id that is an object', body: '{"jsonrpc":"2.0","id":{},"method":"tools/list"}', status: 400, code: -32600 },
      { name: 'an empty body', body: '', status: 400, code: -32700 },
      { name: 'a batch without a 2025-03-26 session', body: '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', status: 400, code: -32600 },
      { name: 'a form content type', body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415 },
      { name: 'an Accept that fits neither JSON nor SSE', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers: { accept: 'text/html' }, status: 406 },
    ];
    for (const c of cases) {
      it(`answers ${c.status} to ${c.name}`, async () => {
        const res = await request(port, { method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json', ...c.headers }, body: c.body });
        expect(res.status).to.equal(c.status);
        if (c.code !== undefined) expect(res.json<{ error: { code: number } }>().error.code).to.equal(c.code);
      });
    }

    it('answers 413 to a body over the limit', async () => {
      const res = await request(port, { method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json' }, body: JSON.stringify(echo(1, 'x'.repeat(100_000))) });
      expect(res.status).to.equal(413);
    });

    it('answers 404 JSON for an unknown package, naming the ones it serves', async () => {
      const res = await postJson(gw.url('/nope/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      expect(res.status).to.equal(404);
      expect(res.text).to.include('nope').and.to.include('mini');
    });

    it('answers 403 to a foreign Origin (DNS rebinding)', async () => {
      const res = await request(port, { method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: JSON.stringify(echo(1, 'x')) });
      expect(res.status).to.equal(403);
      const ok = await request(port, { method: 'POST', path: '/mini/mcp', headers: { 'content-type': 'application/json', origin: `http://localhost:${port}` }, body: JSON.stringify(echo(1, 'x')) });
      expect(ok.status).to.equal(200);
    });

    it('still serves normal calls afterwards', async () => {
      const res = await postJson(gw.url('/mini/mcp'), echo(9, 'still here'));
      expect((res.json as { result: unknown }).result).to.deep.equal({ content: [{ type: 'text', text: 'still here' }] });
    });
  });

  describe('convenience routes', () => {
    it('GET /{name}/mcp/tools/list and POST /{name}/mcp/tools/call', async () => {
      const list = await request(port, { path: '/mini/mcp/tools/list' });
      expect(list.status).to.equal(200);
      expect(list.json<{ tools: { name: string }[] }>().tools[0]!.name).to.equal('echo');
      const call = await request(port, { method: 'POST', path: '/mini/mcp/tools/call', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'echo', arguments: { message: 'conv' } }) });
      expect(call.status).to.equal(200);
      expect(call.json()).to.deep.equal({ content: [{ type: 'text', text: 'conv' }] });
      const bad = await request(port, { method: 'POST', path: '/mini/mcp/tools/call', headers: { 'content-type': 'application/json' }, body: '{"arguments":{}}' });
      expect(bad.status).to.equal(400);
    });
  });

  it('/health lists each server and its state', async () => {
    const res = await request(port, { path: '/health' });
    const body = res.json<{ status: string; servers: Record<string, { state: string; transport: string }> }>();
    expect(body.status).to.equal('ok');
    expect(body.servers.mini).to.include({ transport: 'stdio', state: 'up' });
    expect(body.servers.everything).to.include({ transport: 'stdio' });
  });
});
