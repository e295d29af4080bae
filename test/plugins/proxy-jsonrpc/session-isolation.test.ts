import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';

/** An SDK v1 session that records every message its transport receives. */
interface Recorded {
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  readonly seen: JSONRPCMessage[];
}

async function connect(gw: TestGateway, server: string, capabilities: Record<string, unknown>): Promise<Recorded> {
  const client = new Client({ name: 'isolation-test', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(gw.url(`/${server}/mcp`)));
  await client.connect(transport);
  const seen: JSONRPCMessage[] = [];
  const deliver = transport.onmessage! as (...args: unknown[]) => void;
  transport.onmessage = (message: JSONRPCMessage, ...rest: unknown[]) => {
    seen.push(message);
    deliver(message, ...rest);
  };
  return { client, transport, seen };
}

/** Waits for an asynchronous condition, polling, up to `ms`. */
async function waitFor(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Ends the session with DELETE, as a client that says goodbye does, then closes the client. */
async function end(session: Recorded): Promise<void> {
  await session.transport.terminateSession().catch(() => undefined);
  await session.client.close();
}

const textOf = (result: unknown): string => ((result as { content: { text: string }[] }).content[0]!.text);
const methodsOf = (seen: JSONRPCMessage[]): string[] => seen.flatMap((m) => ('method' in m ? [m.method] : []));

describe('proxy-jsonrpc: one session\'s business stays that session\'s on a shared server', function () {
  this.timeout(30_000);

  describe('server-everything shared by two SDK sessions', () => {
    let gw: TestGateway;
    const open: Recorded[] = [];
    before(async () => {
      gw = await startGateway({ everything: everythingEntry() });
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map(end));
    });
    after(() => gw.stop());

    it('sends A\'s sampling request to A while B\'s long call runs, never to B (the reported input)', async () => {
      const a = await connect(gw, 'everything', { sampling: {} });
      const b = await connect(gw, 'everything', {});
      open.push(a, b);
      const prompts: string[] = [];
      a.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        prompts.push(JSON.stringify(req.params.messages));
        return { model: 'model-of-a', role: 'assistant', content: { type: 'text', text: 'answer for A' } };
      });
      let progressed!: () => void;
      const running = new Promise<void>((r) => (progressed = r));
      const long = b.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 3 } }, undefined, { onprogress: () => progressed() });
      await running;
      const sampled = await a.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: "A's secret", maxTokens: 5 } });
      expect(textOf(sampled)).to.include('model-of-a').and.include('answer for A');
      expect(prompts).to.have.length(1);
      expect(prompts[0]).to.include("A's secret");
      expect(textOf(await long)).to.include('completed');
      expect(methodsOf(b.seen)).to.not.include('sampling/createMessage');
      expect(JSON.stringify(b.seen)).to.not.include("A's secret");
    });

    it('does the same for a legacy HTTP+SSE session with sampling beside a Streamable HTTP session', async () => {
      const a = new Client({ name: 'legacy-a', version: '1.0.0' }, { capabilities: { sampling: {} } });
      await a.connect(new SSEClientTransport(new URL(gw.url('/everything/sse'))));
      const b = await connect(gw, 'everything', {});
      open.push(b);
      try {
        a.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
          model: 'legacy-model',
          role: 'assistant',
          content: { type: 'text', text: `legacy saw ${JSON.stringify(req.params.messages).includes('legacy secret')}` },
        }));
        let progressed!: () => void;
        const running = new Promise<void>((r) => (progressed = r));
        const long = b.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 2 } }, undefined, { onprogress: () => progressed() });
        await running;
        const sampled = await a.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'legacy secret', maxTokens: 5 } });
        expect(textOf(sampled)).to.include('legacy-model').and.include('legacy saw true');
        await long;
        expect(JSON.stringify(b.seen)).to.not.include('legacy secret');
      } finally {
        await a.close();
      }
    });

    it('gives a session that declared no sampling a server without the sampling tool, and one that did the tool', async () => {
      const a = await connect(gw, 'everything', { sampling: {} });
      const b = await connect(gw, 'everything', {});
      open.push(a, b);
      const toolsOfA = (await a.client.listTools()).tools.map((t) => t.name);
      const toolsOfB = (await b.client.listTools()).tools.map((t) => t.name);
      expect(toolsOfA).to.include('trigger-sampling-request');
      expect(toolsOfB).to.not.include('trigger-sampling-request');
      expect(toolsOfB).to.include('echo');
    });

    it('sends an elicitation to the one session that declared elicitation while another session with sampling calls too', async () => {
      const a = await connect(gw, 'everything', { sampling: {} });
      const c = await connect(gw, 'everything', { elicitation: {} });
      open.push(a, c);
      a.client.setRequestHandler(CreateMessageRequestSchema, async () => ({ model: 'model-of-a', role: 'assistant', content: { type: 'text', text: 'from A' } }));
      c.client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' }));
      const [sampled, elicited] = await Promise.all([
        a.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'for A only', maxTokens: 5 } }),
        c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }),
      ]);
      expect(textOf(sampled)).to.include('from A');
      expect(JSON.stringify(elicited).toLowerCase()).to.include('decline');
      expect(methodsOf(a.seen)).to.not.include('elicitation/create');
      expect(methodsOf(c.seen)).to.not.include('sampling/createMessage');
    });
  });

  describe('a server that asks, logs and keeps subscriptions for all its clients at once', () => {
    let gw: TestGateway;
    const open: Recorded[] = [];
    before(async () => {
      gw = await startGateway({ state: { command: process.execPath, args: [fixture('session-state-server.mjs')] } });
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map(end));
    });
    after(() => gw.stop());

    const received = async (client: Client): Promise<Record<string, unknown>[]> =>
      JSON.parse(textOf(await client.callTool({ name: 'received', arguments: {} }))) as Record<string, unknown>[];

    it('answers a server request no session may receive with a JSON-RPC error at once, and B never sees it', async () => {
      const b = await connect(gw, 'state', {});
      open.push(b);
      const result = await b.client.callTool({ name: 'ask', arguments: { method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } } });
      const error = JSON.parse(textOf(result)) as { code: number; message: string };
      expect(error.code).to.equal(-32601);
      expect(error.message).to.equal('No client may receive sampling/createMessage: the client session that caused it did not declare the "sampling" capability');
      expect(methodsOf(b.seen)).to.not.include('sampling/createMessage');
    });

    it('refuses a server request while calls of two sessions are in flight on the shared process', async () => {
      const b = await connect(gw, 'state', {});
      const d = await connect(gw, 'state', {});
      open.push(b, d);
      const slow = d.client.callTool({ name: 'slow', arguments: { message: 'd', ms: 1500 } });
      await waitFor(async () => ((await (await fetch(gw.url('/health'))).json()) as { servers: { state: { inFlight: number } } }).servers.state.inFlight === 1, 5000, 'D\'s call in flight');
      const result = await b.client.callTool({ name: 'ask', arguments: { method: 'roots/list' } });
      expect(JSON.parse(textOf(result))).to.deep.equal({ code: -32601, message: 'No client may receive roots/list: calls of several sessions are in flight on this process' });
      expect(textOf(await slow)).to.equal('d');
      expect(methodsOf(b.seen).concat(methodsOf(d.seen))).to.not.include('roots/list');
    });

    it('gives a session that declared roots a process of its own that asks it, and declares only its capabilities', async () => {
      const r = await connect(gw, 'state', { roots: { listChanged: true } });
      open.push(r);
      r.client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///r-only', name: 'r' }] }));
      const result = await r.client.callTool({ name: 'ask', arguments: { method: 'roots/list' } });
      expect(JSON.parse(textOf(result))).to.deep.equal({ roots: [{ uri: 'file:///r-only', name: 'r' }] });
      expect((await received(r.client))[0]).to.deep.equal({ initialize: { roots: { listChanged: true } } });
      const shared = await connect(gw, 'state', {});
      open.push(shared);
      expect((await received(shared.client))[0]).to.deep.equal({ initialize: {} });
    });

    it('keeps log levels per session: the server gets the most verbose, each session only what it asked for', async () => {
      const quiet = await connect(gw, 'state', {});
      const loud = await connect(gw, 'state', {});
      open.push(quiet, loud);
      const logs = { quiet: [] as string[], loud: [] as string[] };
      quiet.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.quiet.push(String(n.params.data)));
      loud.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.loud.push(String(n.params.data)));
      await quiet.client.setLoggingLevel('error');
      await loud.client.setLoggingLevel('debug');
      await quiet.client.setLoggingLevel('warning');
      const levels = (await received(loud.client)).flatMap((r) => (r['logging/setLevel'] ? [r['logging/setLevel']] : []));
      expect(levels).to.deep.equal(['error', 'debug']);
      await quiet.client.callTool({ name: 'log', arguments: { level: 'info', data: 'quiet-info' } });
      await quiet.client.callTool({ name: 'log', arguments: { level: 'error', data: 'quiet-error' } });
      await loud.client.callTool({ name: 'log', arguments: { level: 'debug', data: 'loud-debug' } });
      expect(logs.quiet).to.deep.equal(['quiet-error']);
      expect(logs.loud).to.deep.equal(['loud-debug']);
    });

    it('gives a restarted server its sessions\' log level and subscriptions back', async () => {
      const a = await connect(gw, 'state', {});
      open.push(a);
      await a.client.setLoggingLevel('notice');
      await a.client.subscribeResource({ uri: 'test://kept' });
      type Shared = { servers: { state: { pid?: number; ready: boolean; restarts: number } } };
      const shared = async () => ((await (await fetch(gw.url('/health'))).json()) as Shared).servers.state;
      const before = await shared();
      process.kill(before.pid!, 'SIGKILL');
      await waitFor(async () => {
        const now = await shared();
        return now.ready && now.restarts > before.restarts;
      }, 10_000, 'the server to restart');
      const seen = (await received(a.client)).filter((r) => r.initialize === undefined);
      expect(seen).to.deep.equal([{ 'logging/setLevel': 'notice' }, { 'resources/subscribe': 'test://kept' }]);
    });

    it('keeps subscriptions per session: one session\'s unsubscribe never ends another\'s, and updates go to subscribers only', async () => {
      const a = await connect(gw, 'state', {});
      const b = await connect(gw, 'state', {});
      const c = await connect(gw, 'state', {});
      open.push(a, b, c);
      const updates = { a: [] as string[], b: [] as string[], c: [] as string[] };
      const changes = { a: 0, b: 0, c: 0 };
      for (const [name, s] of Object.entries({ a, b, c }) as ['a' | 'b' | 'c', Recorded][]) {
        s.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates[name].push(n.params.uri));
        s.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changes[name]++);
      }
      // updates travel on the sessions' GET streams: wait until a list change (sent to every session) reaches all three
      await waitFor(async () => {
        await c.client.callTool({ name: 'changed', arguments: {} });
        return changes.a > 0 && changes.b > 0 && changes.c > 0;
      }, 5000, 'the GET streams of the three sessions');
      await a.client.subscribeResource({ uri: 'test://x' });
      await b.client.subscribeResource({ uri: 'test://x' });
      await a.client.unsubscribeResource({ uri: 'test://x' });
      const seen = (await received(c.client)).filter((r) => r['resources/subscribe'] === 'test://x' || r['resources/unsubscribe'] === 'test://x');
      expect(seen).to.deep.equal([{ 'resources/subscribe': 'test://x' }]);
      await c.client.callTool({ name: 'update', arguments: { uri: 'test://x' } });
      await waitFor(() => updates.b.length === 1, 5000, 'the update on B\'s stream');
      expect(updates).to.deep.equal({ a: [], b: ['test://x'], c: [] });
      open.splice(open.indexOf(b), 1);
      await end(b);
      await waitFor(async () => (await received(c.client)).some((r) => r['resources/unsubscribe'] === 'test://x'), 5000, 'the server to be unsubscribed once B left');
    });
  });
});
