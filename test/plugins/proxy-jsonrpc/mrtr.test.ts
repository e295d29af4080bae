import { expect } from 'chai';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { envelope, MODERN, modernPost } from '../../helpers/modern.js';

interface Rpc {
  id?: unknown;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');

/** A pinned v2 client whose HTTP bodies (request and answer) are recorded. */
async function recordedClient(url: string, capabilities: Record<string, unknown>): Promise<{ client: Client; wire: { sent: Record<string, unknown>; answer: string }[] }> {
  const wire: { sent: Record<string, unknown>; answer: string }[] = [];
  const client = new Client({ name: 'mrtr', version: '1' }, { capabilities, versionNegotiation: { mode: { pin: MODERN } } });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === 'POST') wire.push({ sent: JSON.parse(String(init.body)) as Record<string, unknown>, answer: await res.clone().text() });
      return res;
    },
  });
  await client.connect(transport);
  return { client, wire };
}

describe('proxy-jsonrpc: MRTR bridge for a legacy server\'s sampling, elicitation and roots requests', function () {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() }, { proxy: { inputTimeoutMs: 3000 } });
    url = gw.url('/everything/mcp');
  });
  after(() => gw.stop());

  const health = async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { everything: { inFlight: number } } }).servers.everything;

  it('turns the server\'s sampling request into input_required, and the v2 client\'s retry into the server\'s answer', async () => {
    const { client, wire } = await recordedClient(url, { sampling: {} });
    const seen: unknown[] = [];
    client.setRequestHandler('sampling/createMessage', async (req) => {
      seen.push(req.params.messages[0]!.content);
      return { model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled answer 42' } };
    });
    try {
      const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'ping-42', maxTokens: 5 } });
      expect(textOf(result)).to.include('sampled answer 42').and.include('test-model');
      expect(seen).to.deep.equal([{ type: 'text', text: 'Resource trigger-sampling-request context: ping-42' }]);
      const calls = wire.filter((w) => w.sent.method === 'tools/call');
      expect(calls).to.have.length(2);
      const first = (JSON.parse(calls[0]!.answer) as Rpc).result!;
      expect(first.resultType).to.equal('input_required');
      expect(Object.keys(first.inputRequests as object)).to.deep.equal(['sampling-1']);
      expect((first.inputRequests as Record<string, { method: string }>)['sampling-1']!.method).to.equal('sampling/createMessage');
      const retry = calls[1]!.sent.params as Record<string, unknown>;
      expect(retry.requestState).to.equal(first.requestState);
      expect(Object.keys(retry.inputResponses as object)).to.deep.equal(['sampling-1']);
      expect(calls[1]!.sent.id).to.not.equal(calls[0]!.sent.id);
    } finally {
      await client.close();
    }
  });

  it('keeps each client\'s sampling its own when several callers sample at once (one call per process that may ask)', async () => {
    const clients = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map(async (who) => {
      const { client } = await recordedClient(url, { sampling: {} });
      const prompts: unknown[] = [];
      client.setRequestHandler('sampling/createMessage', async (req) => {
        prompts.push(req.params.messages[0]!.content);
        await new Promise((r) => setTimeout(r, 100));
        return { model: `model-${who}`, role: 'assistant', content: { type: 'text', text: `answer for ${who}` } };
      });
      return { who, client, prompts };
    }));
    try {
      const results = await Promise.all(clients.map(({ who, client }) => client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: `secret of ${who}`, maxTokens: 5 } })));
      results.forEach((result, i) => {
        const { who, prompts } = clients[i]!;
        expect(textOf(result)).to.include(`answer for ${who}`).and.include(`model-${who}`);
        expect(prompts).to.deep.equal([{ type: 'text', text: `Resource trigger-sampling-request context: secret of ${who}` }]);
      });
    } finally {
      await Promise.all(clients.map(({ client }) => client.close()));
    }
  });

  it('lists the tools that ask the client only to a request that declared what they ask for', async () => {
    const { client: capable } = await recordedClient(url, { sampling: {}, elicitation: {} });
    const { client: plain } = await recordedClient(url, {});
    try {
      const names = async (c: Client) => (await c.listTools()).tools.map((t) => t.name);
      expect(await names(capable)).to.include.members(['trigger-sampling-request', 'trigger-elicitation-request']);
      expect(await names(plain)).to.not.include.members(['trigger-sampling-request']);
      expect(await names(plain)).to.include('echo');
    } finally {
      await Promise.all([capable.close(), plain.close()]);
    }
  });

  it('bridges elicitation the same way', async () => {
    const { client } = await recordedClient(url, { elicitation: {} });
    client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name: 'Ada Lovelace' } }));
    try {
      const result = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(textOf(result)).to.include('User provided the requested information').and.include('Ada Lovelace');
    } finally {
      await client.close();
    }
  });

  it('answers the server\'s request with an error at once when the request did not declare the capability', async () => {
    // declaring elicitation only puts the call on a process that may send requests; sampling is still not the client's
    const res = await modernPost(url, 1, 'tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'x', maxTokens: 5 }, _meta: { ...envelope(), 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } });
    expect(res.status).to.equal(200);
    const body = res.json as Rpc;
    const text = body.error ? body.error.message : textOf(body.result);
    expect(text).to.include('did not declare the "sampling" capability');
    expect((await health()).inFlight).to.equal(0);
  });

  it('gives the server\'s request to a call whose client can answer it, past an older one that cannot', async () => {
    const older = modernPost(url, 1, 'tools/call', { name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 2 } });
    const deadline = Date.now() + 5000;
    while ((await health()).inFlight < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const { client } = await recordedClient(url, { sampling: {} });
    client.setRequestHandler('sampling/createMessage', async () => ({ model: 'm', role: 'assistant', content: { type: 'text', text: 'answered by the younger call' } }));
    try {
      const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'young', maxTokens: 5 } });
      expect(textOf(result)).to.include('answered by the younger call');
      expect(textOf(((await older).json as Rpc).result)).to.include('completed');
    } finally {
      await client.close();
    }
  });

  describe('the signed requestState', () => {
    async function firstRound(): Promise<{ state: string; params: Record<string, unknown> }> {
      const params = { name: 'trigger-sampling-request', arguments: { prompt: 'state', maxTokens: 5 }, _meta: envelope({ sampling: {} }) };
      const res = await modernPost(url, 1, 'tools/call', params);
      const result = (res.json as Rpc).result!;
      expect(result.resultType).to.equal('input_required');
      return { state: result.requestState as string, params };
    }
    const answer = { 'sampling-1': { model: 'm', role: 'assistant', content: { type: 'text', text: 'from raw retry' } } };

    it('refuses an altered state, a state sent with another request, and a state used twice', async () => {
      const { state, params } = await firstRound();
      const altered = `${state.slice(0, -2)}${state.endsWith('AA') ? 'BB' : 'AA'}`;
      const bad = (await modernPost(url, 2, 'tools/call', { ...params, requestState: altered, inputResponses: answer })).json as Rpc;
      expect(bad.error!.message).to.include('was not issued by this gateway or was altered');

      const other = (await modernPost(url, 3, 'tools/call', { ...params, name: 'echo', requestState: state, inputResponses: answer })).json as Rpc;
      expect(other.error!.message).to.include('was issued for another request');

      const good = (await modernPost(url, 4, 'tools/call', { ...params, requestState: state, inputResponses: answer })).json as Rpc;
      expect(good.id).to.equal(4);
      expect(good.result!.resultType).to.equal('complete');
      expect(textOf(good.result)).to.include('from raw retry');

      const again = (await modernPost(url, 5, 'tools/call', { ...params, requestState: state, inputResponses: answer })).json as Rpc;
      expect(again.error!.message).to.include('is no longer waiting');
    });

    it('refuses a retry whose arguments differ from the original request, and completes the original only with its own', async () => {
      const params = { name: 'trigger-sampling-request', arguments: { prompt: 'ORIGINAL', maxTokens: 5 }, _meta: envelope({ sampling: {} }) };
      const first = (await modernPost(url, 1, 'tools/call', params)).json as Rpc;
      expect(first.result!.resultType).to.equal('input_required');
      const state = first.result!.requestState as string;

      const changed = (await modernPost(url, 2, 'tools/call', { ...params, arguments: { prompt: 'CHANGED0', maxTokens: 5 }, requestState: state, inputResponses: answer })).json as Rpc;
      expect(changed).to.deep.equal({
        jsonrpc: '2.0',
        id: 2,
        error: {
          code: -32602,
          message: 'Invalid params: this retry\'s params differ from those of the original tools/call request that requestState continues; a retry must repeat the original request\'s params exactly (only inputResponses, requestState and _meta may change), or send the changed request anew without requestState',
        },
      });
      const extra = (await modernPost(url, 3, 'tools/call', { ...params, arguments: { prompt: 'ORIGINAL', maxTokens: 5, more: 1 }, requestState: state, inputResponses: answer })).json as Rpc;
      expect(extra.error!.code).to.equal(-32602);

      // the same params with keys in another order and another _meta are the same request: the call still waits for it
      const same = (await modernPost(url, 4, 'tools/call', {
        _meta: envelope({ sampling: {} }, { progressToken: 'p-4' }),
        inputResponses: answer,
        requestState: state,
        arguments: { maxTokens: 5, prompt: 'ORIGINAL' },
        name: 'trigger-sampling-request',
      })).json as Rpc;
      expect(same.id).to.equal(4);
      expect(same.result!.resultType).to.equal('complete');
      expect(textOf(same.result)).to.include('from raw retry');
    });

    it('asks again for what a retry left unanswered', async () => {
      const { state, params } = await firstRound();
      const retry = (await modernPost(url, 2, 'tools/call', { ...params, requestState: state, inputResponses: {} })).json as Rpc;
      expect(retry.result!.resultType).to.equal('input_required');
      expect(Object.keys(retry.result!.inputRequests as object)).to.deep.equal(['sampling-1']);
      const done = (await modernPost(url, 3, 'tools/call', { ...params, requestState: retry.result!.requestState, inputResponses: answer })).json as Rpc;
      expect(textOf(done.result)).to.include('from raw retry');
    });

    it('cancels the waiting call and answers the server when no retry comes in time', async () => {
      const { state, params } = await firstRound();
      expect((await health()).inFlight).to.equal(1);
      const deadline = Date.now() + 10_000;
      let inFlight = 1;
      while (inFlight !== 0 && Date.now() < deadline) {
        inFlight = (await health()).inFlight;
        if (inFlight !== 0) await new Promise((r) => setTimeout(r, 50));
      }
      expect(inFlight).to.equal(0);
      const late = (await modernPost(url, 9, 'tools/call', { ...params, requestState: state, inputResponses: answer })).json as Rpc;
      expect(late.error!.message).to.match(/expired|no longer waiting/);
    });
  });
});

describe('proxy-jsonrpc: MRTR bridge for roots/list', function () {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
  });
  after(() => gw.stop());

  it('asks a v2 client for its roots through input_required and gives them to the server', async () => {
    const { client, wire } = await recordedClient(gw.url('/everything/mcp'), { roots: {} });
    client.setRequestHandler('roots/list', async () => ({ roots: [{ uri: 'file:///work/project', name: 'project' }] }));
    try {
      const result = await client.callTool({ name: 'get-roots-list', arguments: {} });
      expect(textOf(result)).to.include('Current MCP Roots (1 total)').and.include('file:///work/project');
      const first = (JSON.parse(wire.filter((w) => w.sent.method === 'tools/call')[0]!.answer) as Rpc).result!;
      expect((first.inputRequests as Record<string, { method: string }>)['roots-1']!.method).to.equal('roots/list');
    } finally {
      await client.close();
    }
  });
});
