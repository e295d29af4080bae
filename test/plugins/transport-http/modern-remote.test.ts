import { expect } from 'chai';
import { pino } from 'pino';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createKernel, transportHttp, type JsonObject, type Kernel, type ServerDefinition } from '../../../index.js';
import type { RemoteUpstream } from '../../../plugins/transport-http/index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { connectV2, MODERN, modernPost } from '../../helpers/modern.js';
import { repoRoot } from '../../helpers/paths.js';
import { killAll, ListenerLog, startModernRemote } from './remote-servers.js';

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');

describe('transport-http: a remote server that speaks 2026-07-28 is used in its own era', function () {
  this.timeout(30_000);

  describe('the upstream, driven directly', () => {
    let kernel: Kernel;
    let upstream: RemoteUpstream | undefined;
    before(async () => {
      kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) });
      kernel.use(transportHttp({ reconnect: { initialDelayMs: 50, maxDelayMs: 200 } }));
      await kernel.start();
    });
    afterEach(async () => {
      await upstream?.stop();
      upstream = undefined;
      await killAll();
    });
    after(() => kernel.stop());

    it('probes with server/discover, answers the proxy initialize from it, and sends each request with the modern headers and _meta', async () => {
      const remote = await startModernRemote();
      const server: ServerDefinition = { name: 'far', entry: { url: remote.url }, source: `${repoRoot}/test-config.json`, dir: repoRoot, transport: 'http' };
      upstream = kernel.transports.get('http')!.create({ server, env: {}, label: 'far (test)', log: kernel.log }) as RemoteUpstream;
      const log = new ListenerLog();
      await upstream.start(log);
      upstream.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'proxy', version: '1' } } });
      const init = await log.answer(1);
      expect(init.result).to.deep.equal({
        protocolVersion: '2025-11-25',
        capabilities: { tools: { listChanged: true } },
        serverInfo: { name: 'modern-remote', version: '2.4.0-test' },
        instructions: 'A modern remote test server.',
      });
      expect(upstream.protocol).to.equal('modern');
      upstream.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      upstream.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } });
      const answer = await log.answer(2);
      expect(textOf(answer.result)).to.equal('modern remote echo: hi');
      expect((answer.result as JsonObject).resultType).to.equal('complete');

      const { seen } = await remote.stats();
      expect(seen).to.deep.equal([
        { method: 'server/discover', header: 'server/discover', name: null, version: MODERN, metaVersion: MODERN, session: null },
        { method: 'tools/call', header: 'tools/call', name: 'echo', version: MODERN, metaVersion: MODERN, session: null },
      ]);
      expect(log.events).to.deep.equal([{ kind: 'up' }]);
    });

    it('after the server is killed and restarted on the same port, reports down then up and probes server/discover again', async () => {
      const first = await startModernRemote();
      const server: ServerDefinition = { name: 'far', entry: { url: first.url }, source: `${repoRoot}/test-config.json`, dir: repoRoot, transport: 'http' };
      upstream = kernel.transports.get('http')!.create({ server, env: {}, label: 'far (test)', log: kernel.log }) as RemoteUpstream;
      const log = new ListenerLog();
      await upstream.start(log);
      upstream.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'proxy', version: '1' } } });
      await log.answer(1);
      expect(upstream.protocol).to.equal('modern');

      // no session and no GET stream: the loss shows on the next call
      await first.kill();
      upstream.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'lost' } } });
      const failed = await log.answer(2);
      expect((failed.error as { message: string }).message).to.include(`Remote server "far" (${first.url}): cannot reach ${first.url}`);
      await log.until(() => log.events.some((e) => e.kind === 'down'), 'down');
      expect((log.events[1] as { willRetry: boolean }).willRetry).to.equal(true);

      const second = await startModernRemote(first.port);
      await log.until(() => log.events.filter((e) => e.kind === 'up').length === 2, 'up again');
      expect(log.events.map((e) => e.kind)).to.deep.equal(['up', 'down', 'up']);
      upstream.send({ jsonrpc: '2.0', id: 10, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'proxy', version: '1' } } });
      expect(((await log.answer(10)).result as { serverInfo: unknown }).serverInfo).to.deep.equal({ name: 'modern-remote', version: '2.4.0-test' });
      upstream.send({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'echo', arguments: { message: 'back' } } });
      expect(textOf((await log.answer(11)).result)).to.equal('modern remote echo: back');
      expect((await second.stats()).seen.map((s) => s.method)).to.deep.equal(['server/discover', 'tools/call']);
    });
  });

  describe('behind the gateway by url', () => {
    let gw: TestGateway;
    let remote: Awaited<ReturnType<typeof startModernRemote>>;
    before(async () => {
      remote = await startModernRemote();
      gw = await startGateway({ far: { url: remote.url } });
    });
    after(async () => {
      await gw.stop();
      await killAll();
    });

    it('serves an SDK v1 client (2025 handshake at the gateway) from the modern-only server', async () => {
      const client = new V1Client({ name: 'v1', version: '1' });
      await client.connect(new V1Transport(new URL(gw.url('/far/mcp'))));
      try {
        expect(client.getServerVersion()).to.deep.equal({ name: 'modern-remote', version: '2.4.0-test' });
        expect((await client.listTools()).tools.map((t) => t.name)).to.deep.equal(['echo']);
        expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'from v1' } }))).to.equal('modern remote echo: from v1');
      } finally {
        await client.close();
      }
    });

    it('answers 2025 clients without the 2026-07-28 result fields (resultType, _meta serverInfo), and modern clients with them', async () => {
      type Rpc = { result: JsonObject };
      const echo = { content: [{ type: 'text', text: 'modern remote echo: legacy' }] };
      // a 2025-11-25 session
      const init = await postJson(gw.url('/far/mcp'), { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      const session = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
      expect(init.status, init.text).to.equal(200);
      expect((await postJson(gw.url('/far/mcp'), { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).to.equal(202);
      const call = await postJson(gw.url('/far/mcp'), { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'legacy' } } }, session);
      expect((call.json as Rpc).result, call.text).to.deep.equal(echo);
      const list = await postJson(gw.url('/far/mcp'), { jsonrpc: '2.0', id: 3, method: 'tools/list' }, session);
      const listed = (list.json as Rpc).result;
      expect(Object.keys(listed), list.text).to.deep.equal(['tools']);
      // the handshake-free bare call is legacy too
      const bare = await postJson(gw.url('/far/mcp'), { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'echo', arguments: { message: 'legacy' } } });
      expect((bare.json as Rpc).result, bare.text).to.deep.equal(echo);
      // the same server through a 2026-07-28 request keeps them
      const modern = await modernPost(gw.url('/far/mcp'), 5, 'tools/call', { name: 'echo', arguments: { message: 'modern' } });
      const result = (modern.json as Rpc).result;
      expect(result.resultType, modern.text).to.equal('complete');
      expect((result._meta as JsonObject)['io.modelcontextprotocol/serverInfo']).to.deep.equal({ name: 'modern-remote', version: '2.4.0-test' });
    });

    it('serves an SDK v2 client pinned to 2026-07-28 from the modern-only server', async () => {
      const client = await connectV2(gw.url('/far/mcp'), 'pin');
      try {
        expect(client.getNegotiatedProtocolVersion()).to.equal(MODERN);
        expect((client.getDiscoverResult()!._meta as Record<string, unknown>)['io.modelcontextprotocol/serverInfo']).to.deep.equal({ name: 'modern-remote', version: '2.4.0-test' });
        expect((await client.listTools()).tools.map((t) => t.name)).to.deep.equal(['echo']);
        expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'from v2' } }))).to.equal('modern remote echo: from v2');
      } finally {
        await client.close();
      }
      // the gateway never tried a 2025 handshake on the server: it would have been refused
      const methods = (await remote.stats()).seen.map((s) => s.method);
      expect(methods).to.not.include('initialize');
      expect(methods[0]).to.equal('server/discover');
      expect(methods).to.include('tools/call');
    });
  });
});
