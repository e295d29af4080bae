import { expect } from 'chai';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { connectV2, envelope, MODERN, modernPost } from '../../helpers/modern.js';
import { fixture } from '../../helpers/paths.js';

interface Rpc {
  id?: unknown;
  method?: string;
  params?: Record<string, unknown> & { _meta?: Record<string, unknown> };
  result?: Record<string, unknown>;
}

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');

/** An open subscriptions/listen stream: its messages, read as they come. */
class ListenStream {
  readonly messages: Rpc[] = [];
  private buffer = '';
  private readonly abort = new AbortController();
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  static async open(url: string, id: unknown, notifications: Record<string, unknown>): Promise<ListenStream> {
    const stream = new ListenStream();
    const res = await fetch(url, {
      method: 'POST',
      signal: stream.abort.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen' },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { _meta: envelope(), notifications } }),
    });
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    stream.reader = res.body!.getReader();
    return stream;
  }

  /** Waits for the next message that matches, reading the stream; fails after `ms`. */
  async next(match: (m: Rpc) => boolean, ms = 10_000): Promise<Rpc> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching message on the listen stream within ${ms} ms; got ${JSON.stringify(this.messages)}`);
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(1, deadline - Date.now())).unref());
      const chunk = await Promise.race([this.reader!.read(), timer]);
      if (chunk === 'timeout') continue;
      if (chunk.done) throw new Error('the listen stream ended');
      this.buffer += new TextDecoder().decode(chunk.value);
      let end: number;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const event = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) this.messages.push(JSON.parse(data) as Rpc);
      }
    }
  }

  close(): void {
    this.abort.abort();
  }
}

describe('proxy-jsonrpc: a modern SDK v2 server behind the gateway, subscriptions/listen and per-request log levels', function () {
  let gw: TestGateway;
  let url: string;
  before(async () => {
    gw = await startGateway({ modern: { command: process.execPath, args: [fixture('modern-server.mjs')] }, everything: everythingEntry() });
    url = gw.url('/modern/mcp');
  });
  after(() => gw.stop());

  it('serves a modern client and a legacy client from the same v2 server process', async () => {
    const modern = await connectV2(url, 'pin');
    const legacy = new V1Client({ name: 'v1', version: '1' });
    await legacy.connect(new V1Transport(new URL(url)));
    try {
      expect(modern.getNegotiatedProtocolVersion()).to.equal(MODERN);
      const discover = modern.getDiscoverResult()!;
      expect((discover._meta as Record<string, unknown>)['io.modelcontextprotocol/serverInfo']).to.deep.equal({ name: 'modern-fixture', version: '2.4.0-test' });
      expect(discover.instructions).to.equal('A modern test server.');
      expect(textOf(await modern.callTool({ name: 'echo', arguments: { message: 'new' } }))).to.equal('modern echo: new');
      expect(textOf(await legacy.callTool({ name: 'echo', arguments: { message: 'old' } }))).to.equal('modern echo: old');
      expect(legacy.getServerVersion()).to.deep.include({ name: 'modern-fixture', version: '2.4.0-test' });
    } finally {
      await Promise.all([modern.close(), legacy.close()]);
    }
  });

  it('acknowledges a listen stream with what the server can send, then delivers a tools list change tagged with its id', async () => {
    const listen = await ListenStream.open(url, 'listen-7', { toolsListChanged: true, promptsListChanged: true });
    try {
      const ack = await listen.next((m) => m.method === 'notifications/subscriptions/acknowledged');
      expect(listen.messages[0]).to.equal(ack);
      expect(ack.params).to.deep.equal({ _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-7' }, notifications: { toolsListChanged: true } });
      const added = textOf(((await modernPost(url, 1, 'tools/call', { name: 'add-tool', arguments: {} })).json as Rpc).result);
      const changed = await listen.next((m) => m.method === 'notifications/tools/list_changed');
      expect(changed.params!._meta).to.deep.equal({ 'io.modelcontextprotocol/subscriptionId': 'listen-7' });
      const tools = ((await modernPost(url, 2, 'tools/list')).json as Rpc).result!.tools as { name: string }[];
      expect(added).to.match(/^added-\d+$/);
      expect(tools.map((t) => t.name)).to.include(added);
    } finally {
      listen.close();
    }
  });

  it('lets the SDK v2 client\'s listChanged option see the change through its own subscription', async () => {
    const changes: string[][] = [];
    let seen: () => void = () => undefined;
    const arrived = new Promise<void>((r) => (seen = r));
    const client = await connectV2(url, 'pin', { listChanged: { tools: { onChanged: (_err, tools) => { changes.push((tools ?? []).map((t) => t.name)); seen(); } } } });
    try {
      const added = textOf(await client.callTool({ name: 'add-tool', arguments: {} }));
      await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error('no list change within 10 s')), 10_000).unref())]);
      expect(changes[0]).to.include(added);
    } finally {
      await client.close();
    }
  });

  it('sends notifications/message only to a request that set a log level, and only at or above it', async () => {
    const call = (meta: Record<string, unknown>) => modernPost(url, 3, 'tools/call', { name: 'log-then-answer', arguments: {}, _meta: envelope({}, meta) });
    const none = await call({});
    expect(none.headers.get('content-type')).to.match(/^application\/json/);
    expect(none.text).to.not.include('notifications/message');
    const errorsOnly = await call({ 'io.modelcontextprotocol/logLevel': 'error' });
    expect(errorsOnly.text).to.include('an error line').and.not.include('a debug line');
    const all = await call({ 'io.modelcontextprotocol/logLevel': 'debug' });
    expect(all.text).to.include('an error line').and.include('a debug line');
    expect(all.text).to.include('"text":"logged"');
  });

  it('maps resource subscriptions onto the legacy server\'s resources/subscribe', async () => {
    const everything = gw.url('/everything/mcp');
    const uri = 'demo://resource/dynamic/text/1';
    const listen = await ListenStream.open(everything, 5, { resourceSubscriptions: [uri], toolsListChanged: true });
    try {
      const ack = await listen.next((m) => m.method === 'notifications/subscriptions/acknowledged');
      expect(ack.params!.notifications).to.deep.equal({ toolsListChanged: true, resourceSubscriptions: [uri] });
      // the server sends an update for every subscribed resource once when updates are switched on
      await modernPost(everything, 1, 'tools/call', { name: 'toggle-subscriber-updates', arguments: {} });
      const updated = await listen.next((m) => m.method === 'notifications/resources/updated');
      expect(updated.params).to.deep.equal({ uri, _meta: { 'io.modelcontextprotocol/subscriptionId': 5 } });
    } finally {
      await modernPost(everything, 2, 'tools/call', { name: 'toggle-subscriber-updates', arguments: {} });
      listen.close();
    }
  });
});
