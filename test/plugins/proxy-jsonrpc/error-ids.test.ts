import { expect } from 'chai';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

const NOT_FOUND = 'Session not found: it ended or expired; send initialize to start a new one';
const initialize = (id: unknown) => ({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'ids', version: '1' } } });

/** JSON-RPC 2.0 §5: an error answers with the request's id; null only when it could not be determined. */
describe('proxy-jsonrpc: errors on /{name}/mcp keep the request id', () => {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
    url = gw.url('/everything/mcp');
  });
  after(() => gw.stop());

  it('answers a request on an unknown Mcp-Session-Id with 404 -32001 and its id', async () => {
    const res = await postJson(url, { jsonrpc: '2.0', id: 7, method: 'ping' }, { 'mcp-session-id': 'abc' });
    expect(res.status).to.equal(404);
    expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 7, error: { code: -32001, message: NOT_FOUND } });
  });

  it('keeps a string id on an unknown session, and answers null where there is no single request', async () => {
    const named = await postJson(url, { jsonrpc: '2.0', id: 'r-1', method: 'ping' }, { 'mcp-session-id': 'abc' });
    expect(named.json).to.deep.equal({ jsonrpc: '2.0', id: 'r-1', error: { code: -32001, message: NOT_FOUND } });
    const batch = await postJson(url, [{ jsonrpc: '2.0', id: 3, method: 'ping' }], { 'mcp-session-id': 'abc' });
    expect(batch.json).to.deep.equal({ jsonrpc: '2.0', id: null, error: { code: -32001, message: NOT_FOUND } });
    const note = await postJson(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': 'abc' });
    expect(note.json).to.deep.equal({ jsonrpc: '2.0', id: null, error: { code: -32001, message: NOT_FOUND } });
  });

  it('answers initialize sent with "MCP-Protocol-Version: 2026-07-28" with -32022 and its id', async () => {
    const res = await postJson(url, initialize(1), { 'mcp-protocol-version': '2026-07-28' });
    expect(res.status).to.equal(400);
    const body = res.json as { id: unknown; error: { code: number; data: unknown } };
    expect(body.id).to.equal(1);
    expect(body.error.code).to.equal(-32022);
    expect(body.error.data).to.deep.equal({ supported: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'], requested: '2026-07-28' });
  });

  it('answers a request with an unknown MCP-Protocol-Version with -32022 and its id', async () => {
    const res = await postJson(url, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, { 'mcp-protocol-version': '1999-01-01' });
    expect(res.status).to.equal(400);
    expect((res.json as { id: unknown }).id).to.equal(9);
  });

  describe('initialize sent as a notification (no id)', () => {
    const NEEDS_ID = 'Invalid Request: initialize is a request, not a notification: send it with an "id" (a string or a number) to get the server\'s answer and a session';
    const note = { jsonrpc: '2.0', method: 'initialize', params: initialize(0).params };

    it('is refused with 400 and -32600 (id null), and opens no session', async () => {
      const res = await postJson(url, note);
      expect(res.status).to.equal(400);
      expect(res.headers.get('mcp-session-id')).to.equal(null);
      expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: null, error: { code: -32600, message: NEEDS_ID } });
    });

    it('is refused inside a 2025-03-26 batch, beside the answer of the batch\'s request', async () => {
      const res = await postJson(url, [note, { jsonrpc: '2.0', id: 4, method: 'ping' }], { 'mcp-protocol-version': '2025-03-26' });
      expect(res.status).to.equal(200);
      expect(res.json).to.deep.equal([
        { jsonrpc: '2.0', id: null, error: { code: -32600, message: `${NEEDS_ID} (batch item 0)` } },
        { jsonrpc: '2.0', id: 4, result: {} },
      ]);
    });
  });
});
