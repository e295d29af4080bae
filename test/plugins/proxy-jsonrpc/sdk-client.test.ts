import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

describe('proxy-jsonrpc with the official SDK client over Streamable HTTP', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
  });
  after(() => gw.stop());

  async function connect(capabilities: Record<string, unknown> = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client({ name: 'test-client', version: '1.0.0' }, { capabilities });
    const transport = new StreamableHTTPClientTransport(new URL(gw.url('/everything/mcp')));
    await client.connect(transport);
    return { client, transport };
  }

  it('lists tools and calls echo', async () => {
    const { client } = await connect();
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).to.include.members(['echo', 'get-sum', 'trigger-long-running-operation']);
    const result = await client.callTool({ name: 'echo', arguments: { message: 'hello gateway' } });
    expect(result.content).to.deep.equal([{ type: 'text', text: 'Echo: hello gateway' }]);
    await client.close();
  });

  it('negotiates the protocol version and hands out a session id', async () => {
    const { client, transport } = await connect();
    expect(transport.sessionId).to.match(/^[0-9a-f]{32}$/);
    expect(client.getServerVersion()?.name).to.be.a('string');
    await client.close();
  });

  it('relays progress notifications of a long call to the caller', async () => {
    const { client } = await connect();
    const progress: number[] = [];
    const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress).to.deep.equal([1, 2, 3, 4]);
    expect(JSON.stringify(result.content)).to.include('completed');
    await client.close();
  });

  it('routes a sampling request back to the client that caused it, and its answer to the server', async () => {
    const { client } = await connect({ sampling: {} });
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
      model: 'test-model',
      role: 'assistant',
      content: { type: 'text', text: `sampled: ${JSON.stringify(req.params.messages[0]?.content)}` },
    }));
    const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'ping-42', maxTokens: 5 } });
    const text = JSON.stringify(result.content);
    expect(text).to.include('test-model');
    expect(text).to.include('ping-42');
    await client.close();
  });

  it('routes an elicitation request to the client and returns its answer', async () => {
    const { client } = await connect({ elicitation: {} });
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' }));
    const result = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    expect(JSON.stringify(result.content).toLowerCase()).to.include('decline');
    await client.close();
  });

  it('ends a session with DELETE; the old session id then gets 404', async () => {
    const { client, transport } = await connect();
    const id = transport.sessionId!;
    await transport.terminateSession();
    const res = await postJson(gw.url('/everything/mcp'), { jsonrpc: '2.0', id: 7, method: 'tools/list' }, { 'mcp-session-id': id });
    expect(res.status).to.equal(404);
    await client.close();
  });

  it('keeps two concurrent SDK clients apart', async () => {
    const a = await connect();
    const b = await connect();
    const calls = [];
    for (let i = 0; i < 20; i++) {
      calls.push(a.client.callTool({ name: 'echo', arguments: { message: `a${i}` } }).then((r) => ['a', i, r] as const));
      calls.push(b.client.callTool({ name: 'echo', arguments: { message: `b${i}` } }).then((r) => ['b', i, r] as const));
    }
    for (const [who, i, r] of await Promise.all(calls)) {
      expect(r.content).to.deep.equal([{ type: 'text', text: `Echo: ${who}${i}` }]);
    }
    await a.client.close();
    await b.client.close();
  });
});
