import { expect } from 'chai';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { envelope, MODERN, modernPost } from '../../helpers/modern.js';
import { fixture } from '../../helpers/paths.js';

/**
 * A body nested thousands of levels deep parses (JSON.parse does not recurse) but cannot be serialized
 * to the server (JSON.stringify does): it is refused with 400 and -32600, on every path that sends it.
 */

const NESTED = 'Invalid Request: the message nests arrays or objects too deeply for the gateway to forward it (serializing it ran out of stack, at a few thousand levels; MCP messages need a few dozen): flatten its arguments, or send deeply nested data as a JSON string';

/** The newcomer's body: a tools/call whose arguments nest arrays `depth` deep, with these extra params. */
function deepCall(id: number, depth: number, extra = ''): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{${extra}"name":"echo","arguments":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}}`;
}

const refused = (id: number) => ({ jsonrpc: '2.0', id, error: { code: -32600, message: NESTED } });

describe('proxy-jsonrpc: messages nested too deeply to forward', function () {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry(), deep: { command: process.execPath, args: [fixture('deep-answer.mjs')] } });
    url = gw.url('/everything/mcp');
  });
  after(() => gw.stop());

  const echo = async (id: number): Promise<unknown> =>
    (await postJson(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: `alive ${id}` } } })).json;

  it('refuses the bare call with 400 and -32600 at once, and keeps serving', async () => {
    const res = await postJson(url, deepCall(1, 200_000));
    expect(res.status).to.equal(400);
    expect(res.json).to.deep.equal(refused(1));
    expect(await echo(2)).to.deep.equal({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'Echo: alive 2' }] } });
  });

  it('refuses it in a session the same way', async () => {
    const init = await postJson(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'deep', version: '1' } } });
    const session = init.headers.get('mcp-session-id')!;
    const res = await postJson(url, deepCall(3, 200_000), { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
    expect(res.status).to.equal(400);
    expect(res.json).to.deep.equal(refused(3));
  });

  it('refuses a 2026-07-28 call, also one that declares sampling, and frees its exclusive process', async () => {
    const headers = { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'echo' };
    const plain = await postJson(url, deepCall(4, 200_000, `"_meta":${JSON.stringify(envelope())},`), headers);
    expect(plain.status).to.equal(400);
    expect(plain.json).to.deep.equal(refused(4));
    const sampling = await postJson(url, deepCall(5, 200_000, `"_meta":${JSON.stringify(envelope({ sampling: {} }))},`), headers);
    expect(sampling.status).to.equal(400);
    expect(sampling.json).to.deep.equal(refused(5));
    // all 4 exclusive processes are free: 4 calls that ask the client get their input_required round
    for (let id = 6; id < 10; id++) {
      const res = await modernPost(url, id, 'tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'p', maxTokens: 5 }, _meta: envelope({ sampling: {} }) });
      expect(res.status, res.text).to.equal(200);
      expect((res.json as { result: { resultType: string } }).result.resultType).to.equal('input_required');
    }
  });

  it('forwards a message nested 1000 deep to the server, which answers it', async () => {
    const res = await postJson(url, deepCall(10, 1000));
    expect(res.status).to.equal(200);
    // the server's own answer: its echo tool wants a string "message"
    expect(res.json).to.deep.equal({
      jsonrpc: '2.0',
      id: 10,
      result: { content: [{ type: 'text', text: 'MCP error -32602: Input validation error: Invalid arguments for tool echo: Invalid input: expected string, received undefined at message' }], isError: true },
    });
  });

  it('answers a client whose server sent an answer nested too deeply with -32603 saying so, instead of leaving it waiting', async () => {
    const answer = (id: number) => ({
      jsonrpc: '2.0',
      id,
      error: { code: -32603, message: 'Internal error: the server\'s answer nests arrays or objects too deeply for the gateway to forward it (serializing it ran out of stack, at a few thousand levels): the server must return flatter results' },
    });
    const call = { name: 'deep', arguments: { depth: 100_000 } };
    const bare = await postJson(gw.url('/deep/mcp'), { jsonrpc: '2.0', id: 11, method: 'tools/call', params: call });
    expect(bare.status).to.equal(200);
    expect(bare.json).to.deep.equal(answer(11));
    const streamed = await postJson(gw.url('/deep/mcp'), { jsonrpc: '2.0', id: 12, method: 'tools/call', params: call }, { accept: 'text/event-stream' });
    expect(streamed.text).to.include(`data: ${JSON.stringify(answer(12))}`);
    const modern = await modernPost(gw.url('/deep/mcp'), 13, 'tools/call', call);
    expect(modern.status).to.equal(200);
    expect(modern.json).to.deep.equal(answer(13));
    // a flat enough answer goes through
    const fine = await postJson(gw.url('/deep/mcp'), { jsonrpc: '2.0', id: 14, method: 'tools/call', params: { name: 'deep', arguments: { depth: 3 } } });
    expect(fine.json).to.deep.equal({ jsonrpc: '2.0', id: 14, result: { content: [{ type: 'text', text: 'deep' }], structuredContent: { x: [[[]]] } } });
  });

  it('on POST /{name}/mcp/tools/call: 400 for arguments nested too deeply, 502 for a server answer nested too deeply', async () => {
    const args = `{"name":"echo","arguments":{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    const mine = await postJson(gw.url('/everything/mcp/tools/call'), args);
    expect(mine.status).to.equal(400);
    expect(mine.json).to.deep.equal({ error: { code: -32600, message: NESTED } });
    const theirs = await postJson(gw.url('/deep/mcp/tools/call'), { name: 'deep', arguments: { depth: 5000 } });
    expect(theirs.status).to.equal(502);
    expect(theirs.json).to.deep.equal({
      error: { code: -32603, message: 'Internal error: the server\'s answer nests arrays or objects too deeply for the gateway to forward it (serializing it ran out of stack, at a few thousand levels): the server must return flatter results' },
    });
    // the route keeps serving
    const fine = await postJson(gw.url('/deep/mcp/tools/call'), { name: 'deep', arguments: { depth: 3 } });
    expect(fine.status).to.equal(200);
    expect(fine.json).to.deep.equal({ content: [{ type: 'text', text: 'deep' }], structuredContent: { x: [[[]]] } });
  });
});
