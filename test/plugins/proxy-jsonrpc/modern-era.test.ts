import { expect } from 'chai';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Client } from '@modelcontextprotocol/client';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { connectV2, envelope, MODERN, modernPost } from '../../helpers/modern.js';

interface Rpc {
  id?: unknown;
  result?: Record<string, unknown> & { _meta?: Record<string, unknown> };
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');

describe('proxy-jsonrpc: protocol 2026-07-28 beside the 2025 versions on /{name}/mcp', function () {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() });
    url = gw.url('/everything/mcp');
  });
  after(() => gw.stop());

  async function v1(): Promise<V1Client> {
    const client = new V1Client({ name: 'v1', version: '1.0.0' });
    await client.connect(new V1Transport(new URL(url)));
    return client;
  }

  const health = async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { everything: { instances: number; inFlight: number; pid: number } } }).servers.everything;

  it('serves a pinned v2 client, an auto v2 client and a v1 client side by side, on the one shared process', async () => {
    const before = await health();
    const pinned = await connectV2(url, 'pin');
    const auto = await connectV2(url, 'auto');
    const legacy = await v1();
    try {
      expect(pinned.getNegotiatedProtocolVersion()).to.equal(MODERN);
      expect(auto.getNegotiatedProtocolVersion()).to.equal(MODERN);
      const discover = pinned.getDiscoverResult()!;
      expect(discover.supportedVersions).to.deep.equal([MODERN, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05']);
      expect((discover._meta as Record<string, { name: string }>)['io.modelcontextprotocol/serverInfo']!.name).to.equal('mcp-servers/everything');
      expect(discover.capabilities.tools).to.deep.equal({ listChanged: true });
      expect(discover.capabilities).to.not.have.property('tasks');
      expect(discover.instructions).to.be.a('string').that.is.not.empty;

      for (const [who, client] of [['pinned', pinned], ['auto', auto], ['v1', legacy]] as const) {
        const tools = await client.listTools();
        expect(tools.tools.map((t) => t.name), who).to.include.members(['echo', 'get-sum', 'trigger-long-running-operation']);
        const result = await client.callTool({ name: 'echo', arguments: { message: `from ${who}` } });
        expect(result.content, who).to.deep.equal([{ type: 'text', text: `Echo: from ${who}` }]);
      }
      const after = await health();
      expect(after.instances).to.equal(1);
      expect(after.pid).to.equal(before.pid);
    } finally {
      await Promise.all([pinned.close(), auto.close(), legacy.close()]);
    }
  });

  it('relays the progress of a long call to a modern client on that call\'s own response stream', async () => {
    const client = await connectV2(url, 'pin');
    try {
      const progress: number[] = [];
      const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, { onprogress: (p) => progress.push(p.progress) });
      expect(progress).to.deep.equal([1, 2, 3, 4]);
      expect(textOf(result)).to.include('completed');
    } finally {
      await client.close();
    }
  });

  it('answers with resultType, serverInfo and the caching hints, and mints no session', async () => {
    const list = await modernPost(url, 1, 'tools/list');
    expect(list.status).to.equal(200);
    expect(list.headers.get('mcp-session-id')).to.equal(null);
    const body = list.json as Rpc;
    expect(body.id).to.equal(1);
    expect(body.result!.resultType).to.equal('complete');
    expect(body.result!.ttlMs).to.equal(0);
    expect(body.result!.cacheScope).to.equal('public');
    expect(body.result!._meta!['io.modelcontextprotocol/serverInfo']).to.deep.include({ name: 'mcp-servers/everything', version: '2.0.0' });

    const read = await modernPost(url, 2, 'resources/read', { uri: 'demo://resource/dynamic/text/1' });
    const readBody = read.json as Rpc;
    expect(readBody.result, read.text).to.include({ resultType: 'complete', ttlMs: 0, cacheScope: 'public' });

    const call = (await modernPost(url, 3, 'tools/call', { name: 'echo', arguments: { message: 'x' } })).json as Rpc;
    expect(call.result).to.include({ resultType: 'complete' });
    expect(call.result).to.not.have.property('ttlMs');
  });

  it('answers on an event stream when the client accepts only text/event-stream', async () => {
    const res = await modernPost(url, 11, 'tools/call', { name: 'echo', arguments: { message: 'streamed' } }, { accept: 'text/event-stream' });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(res.text).to.include('"id":11').and.include('Echo: streamed').and.include('"resultType":"complete"');
  });

  describe('header validation', () => {
    const cases: { name: string; headers: Record<string, string | undefined>; method?: string; params?: Record<string, unknown>; code: number; message: RegExp }[] = [
      { name: 'no MCP-Protocol-Version', headers: { 'mcp-protocol-version': undefined }, code: -32020, message: /MCP-Protocol-Version header is missing/ },
      { name: 'an MCP-Protocol-Version unlike the body\'s', headers: { 'mcp-protocol-version': '2025-11-25' }, code: -32020, message: /'2025-11-25' does not match body value '2026-07-28'/ },
      { name: 'no Mcp-Method', headers: { 'mcp-method': undefined }, code: -32020, message: /Mcp-Method header is missing/ },
      { name: 'an Mcp-Method unlike the body\'s', headers: { 'mcp-method': 'tools/list' }, code: -32020, message: /'tools\/list' does not match body value 'tools\/call'/ },
      { name: 'no Mcp-Name on tools/call', headers: { 'mcp-name': undefined }, code: -32020, message: /Mcp-Name header is missing/ },
      { name: 'an Mcp-Name unlike the body\'s', headers: { 'mcp-name': 'get-sum' }, code: -32020, message: /'get-sum' does not match body value 'echo'/ },
      { name: 'a Base64 Mcp-Name of another name', headers: { 'mcp-name': `=?base64?${Buffer.from('get-sum').toString('base64')}?=` }, code: -32020, message: /does not match body value 'echo'/ },
      { name: 'a malformed Base64 Mcp-Name', headers: { 'mcp-name': '=?base64?***?=' }, code: -32020, message: /malformed/ },
    ];
    for (const c of cases) {
      it(`rejects ${c.name} with 400 and HeaderMismatch -32020`, async () => {
        const res = await modernPost(url, 7, c.method ?? 'tools/call', c.params ?? { name: 'echo', arguments: { message: 'x' } }, c.headers);
        expect(res.status, res.text).to.equal(400);
        const body = res.json as Rpc;
        expect(body.id).to.equal(7);
        expect(body.error!.code).to.equal(c.code);
        expect(body.error!.message).to.match(c.message);
      });
    }

    it('accepts an Mcp-Name in the Base64 sentinel form that decodes to the body\'s name', async () => {
      const res = await modernPost(url, 8, 'tools/call', { name: 'echo', arguments: { message: 'sentinel' } }, { 'mcp-name': `=?base64?${Buffer.from('echo').toString('base64')}?=` });
      expect(res.status).to.equal(200);
      expect(textOf((res.json as Rpc).result!)).to.equal('Echo: sentinel');
    });

    it('passes Mcp-Param-* headers it does not know', async () => {
      const res = await modernPost(url, 9, 'tools/call', { name: 'echo', arguments: { message: 'p' } }, { 'mcp-param-region': 'us-west1' });
      expect(res.status).to.equal(200);
    });

    it('answers an unsupported version with 400 and UnsupportedProtocolVersion -32022 naming the supported ones', async () => {
      const res = await postJson(url, { jsonrpc: '2.0', id: 4, method: 'tools/list', params: { _meta: { ...envelope(), 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } }, { 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' });
      expect(res.status).to.equal(400);
      const body = res.json as Rpc;
      expect(body.error!.code).to.equal(-32022);
      expect(body.error!.data).to.deep.equal({ supported: [MODERN, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'], requested: '2099-01-01' });
    });

    it('answers a modern request without client capabilities with 400 and invalid params', async () => {
      const res = await postJson(url, { jsonrpc: '2.0', id: 5, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN } } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
      expect(res.status).to.equal(400);
      expect((res.json as Rpc).error!.code).to.equal(-32602);
    });

    it('answers the methods this revision removed with 404 and method-not-found', async () => {
      for (const method of ['ping', 'logging/setLevel', 'resources/subscribe']) {
        const res = await modernPost(url, 6, method);
        expect(res.status, method).to.equal(404);
        expect((res.json as Rpc).error!.code, method).to.equal(-32601);
      }
    });
  });

  it('keeps a bare JSON-RPC call and an initialize in the legacy era', async () => {
    const bare = await postJson(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(bare.status).to.equal(200);
    expect((bare.json as Rpc).result).to.not.have.property('resultType');
    const init = await postJson(url, { jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    expect(init.headers.get('mcp-session-id')).to.match(/^[0-9a-f]{32}$/);
    expect((init.json as Rpc).result!.protocolVersion).to.equal('2025-11-25');
    await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': init.headers.get('mcp-session-id')! } });
  });

  it('cancels the call upstream when the client closes its response stream', async () => {
    const abort = new AbortController();
    const res = await fetch(url, {
      method: 'POST',
      signal: abort.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'trigger-long-running-operation' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 60, steps: 60 }, _meta: { ...envelope(), progressToken: 'p1' } } }),
    });
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).to.include('"progressToken":"p1"');
    expect((await health()).inFlight).to.equal(1);
    abort.abort();
    await reader.cancel().catch(() => undefined);
    let inFlight = 1;
    const deadline = Date.now() + 5000;
    while (inFlight !== 0 && Date.now() < deadline) {
      inFlight = (await health()).inFlight;
      if (inFlight !== 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(inFlight).to.equal(0);
  });

  it('serves 100 modern and 100 legacy clients at once, every answer its own', async function () {
    this.timeout(120_000);
    const modern = Array.from({ length: 100 }, async (_, i) => {
      const client: Client = await connectV2(url, 'pin');
      try {
        const result = await client.callTool({ name: 'echo', arguments: { message: `modern-${i}` } });
        return textOf(result);
      } finally {
        await client.close();
      }
    });
    const legacy = Array.from({ length: 100 }, async (_, i) => {
      const client = await v1();
      try {
        const result = await client.callTool({ name: 'echo', arguments: { message: `legacy-${i}` } });
        return textOf(result);
      } finally {
        await client.close();
      }
    });
    const [m, l] = await Promise.all([Promise.all(modern), Promise.all(legacy)]);
    m.forEach((text, i) => expect(text).to.equal(`Echo: modern-${i}`));
    l.forEach((text, i) => expect(text).to.equal(`Echo: legacy-${i}`));
  });

  describe('subscriptions/listen that cannot be served', () => {
    it('answers 406 to a client that accepts only JSON, instead of an event stream it cannot read', async () => {
      const res = await modernPost(url, 21, 'subscriptions/listen', { notifications: { toolsListChanged: true } }, { accept: 'application/json' });
      expect(res.status, res.text).to.equal(406);
      expect(res.headers.get('content-type')).to.match(/^application\/json/);
      expect(res.json).to.deep.equal({
        jsonrpc: '2.0',
        id: 21,
        error: {
          code: -32600,
          message: 'Not Acceptable: subscriptions/listen answers with an event stream that stays open, and the Accept header ("application/json") does not allow one; send "Accept: application/json, text/event-stream"',
        },
      });
    });

    const shape = 'params.notifications is a SubscriptionFilter: {"toolsListChanged"?: boolean, "promptsListChanged"?: boolean, "resourcesListChanged"?: boolean, "resourceSubscriptions"?: [uri, …]}';
    const cases: [string, unknown, string][] = [
      ['"all"', 'all', 'params.notifications must be an object, got "all"'],
      ['missing', undefined, 'params.notifications is required'],
      ['a filter with "toolsListChanged": "yes"', { toolsListChanged: 'yes' }, 'params.notifications.toolsListChanged must be a boolean, got "yes"'],
      ['resourceSubscriptions that are not a list of URIs', { resourceSubscriptions: 'file:///x' }, 'params.notifications.resourceSubscriptions must be an array of resource URIs (strings)'],
    ];
    for (const [what, notifications, why] of cases) {
      it(`refuses notifications ${what} with -32602 naming the valid shape`, async () => {
        const res = await modernPost(url, 22, 'subscriptions/listen', notifications === undefined ? {} : { notifications });
        expect(res.status, res.text).to.equal(400);
        expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 22, error: { code: -32602, message: `Invalid params: ${why}; ${shape}` } });
      });
    }
  });
});
