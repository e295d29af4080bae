import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { proxyJsonRpc, transportHttp, transportSse, transportStdio, type JsonObject } from '../../../index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { freePort, killAll, startEverything, type RemoteServer } from './remote-servers.js';
import { readSse } from '../transport-sse/sse-reader.js';

const plugins = () => [transportStdio(), transportHttp({ reconnect: { initialDelayMs: 50, maxDelayMs: 200 } }), proxyJsonRpc({ handshakeTimeoutMs: 10_000 }), transportSse()];

async function connect(gw: TestGateway, name: string): Promise<Client> {
  const client = new Client({ name: 'remote-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(gw.url(`/${name}/mcp`))));
  return client;
}

async function healthOf(gw: TestGateway, name: string): Promise<JsonObject> {
  const res = await fetch(gw.url('/health'));
  return ((await res.json()) as { servers: Record<string, JsonObject> }).servers[name]!;
}

describe('transport-http: remote servers served through the gateway at /{name}/mcp', function () {
  this.timeout(30_000);
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await killAll();
  });

  for (const mode of ['streamableHttp', 'sse'] as const) {
    it(`serves server-everything in ${mode} mode to the SDK client`, async () => {
      const remote = await startEverything(mode);
      gw = await startGateway({ far: { url: remote.url } }, { plugins: plugins() });
      expect(gw.kernel.servers.get('far')!.transport).to.equal('http');
      const client = await connect(gw, 'far');
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).to.include.members(['echo', 'get-sum']);
      const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
      expect(JSON.stringify(sum.content)).to.include('42');
      const progress: number[] = [];
      const long = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } }, undefined, {
        onprogress: (p) => progress.push(p.progress),
      });
      expect(progress).to.deep.equal([1, 2, 3]);
      expect(JSON.stringify(long.content)).to.include('completed');
      await client.close();
    });
  }

  it('answers calls to an unreachable URL with an error naming the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}/mcp`;
    gw = await startGateway({ gone: { url } }, { plugins: plugins() });
    const res = await postJson(gw.url('/gone/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const error = (res.json as { error?: { message: string } }).error;
    expect(error, res.text).to.not.equal(undefined);
    expect(error!.message).to.include(url).and.to.include('ECONNREFUSED');
    // POST /sse: the error arrives as the response event, and the stream ends
    const port = gw.kernel.address().port;
    const streamed = await readSse(port, '/gone/sse', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' });
    expect(await streamed.finished).to.equal('end');
    expect(streamed.events).to.have.length(1);
    const answer = JSON.parse(streamed.events[0]!.data) as { id: number; error: { message: string } };
    expect(answer.id).to.equal(2);
    expect(answer.error.message).to.include(url);
    const health = await healthOf(gw, 'gone');
    expect(String(health.lastError)).to.include(url);
  });

  for (const mode of ['streamableHttp', 'sse'] as const) {
    it(`reconnects to a ${mode} server restarted mid-session; the client's session goes on`, async () => {
      const first: RemoteServer = await startEverything(mode);
      gw = await startGateway({ far: { url: first.url } }, { plugins: plugins() });
      const client = await connect(gw, 'far');
      expect((await client.callTool({ name: 'echo', arguments: { message: 'before' } })).content).to.deep.equal([{ type: 'text', text: 'Echo: before' }]);

      await first.kill();
      await waitForHealth(gw, (h) => h.ready === false, 'the gateway to see the server go');
      await startEverything(mode, first.port);
      await waitForHealth(gw, (h) => h.ready === true && h.restarts === 1, 'the gateway to reconnect');

      expect((await client.callTool({ name: 'echo', arguments: { message: 'after' } })).content).to.deep.equal([{ type: 'text', text: 'Echo: after' }]);
      await client.close();
    });
  }
});

async function waitForHealth(gw: TestGateway, check: (h: JsonObject) => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: JsonObject = {};
  while (Date.now() < deadline) {
    last = await healthOf(gw, 'far');
    if (check(last)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} did not happen within ${ms} ms; health: ${JSON.stringify(last)}`);
}
