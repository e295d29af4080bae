import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { proxyJsonRpc, transportHttp, transportSse, transportStdio, type JsonObject } from '../../../index.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

/** A web service that is not an MCP server: every request gets 200 with `body` as `type`. */
async function startService(type: string, body: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': type }).end(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
  return {
    url,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('transport-http: a URL that answers 200 but is not an MCP server', function () {
  this.timeout(30_000);
  let gw: TestGateway | undefined;
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await service?.close();
    service = undefined;
  });

  const long = JSON.stringify({ ok: true, service: 'billing', padding: 'x'.repeat(300) });
  for (const [what, type, body, got] of [
    ['JSON without jsonrpc', 'application/json', '{"ok":true}', 'the URL did not answer initialize with a JSON-RPC response; it answered HTTP 200: {"ok":true}'],
    ['long JSON, quoted shortened', 'application/json', long, `the URL did not answer initialize with a JSON-RPC response; it answered HTTP 200: ${long.slice(0, 200)}…`],
    ['an HTML page', 'text/html', '<html><body>Welcome</body></html>', 'unreadable answer: the answer is not JSON: <html><body>Welcome</body></html>'],
  ] as const) {
    it(`${what}: the handshake fails at once, /health and calls say what it got and what to check`, async () => {
      service = await startService(type, body);
      // the proxy's own handshake timeout (30 s) is the default: only an answer that fails at once passes
      gw = await startGateway({ billing: { url: service.url } }, { plugins: [transportStdio(), transportHttp(), proxyJsonRpc(), transportSse()] });
      const why = `Remote server "billing" (${service.url}): ${got}: check that mcpServers.billing.url is the MCP endpoint of an MCP server (often a path ending in /mcp), not another page or API`;

      let health: { status?: string; failed?: string[]; servers?: Record<string, JsonObject> } = {};
      for (const deadline = Date.now() + 10_000; health.servers?.billing?.state !== 'failed'; await new Promise((r) => setTimeout(r, 25))) {
        if (Date.now() > deadline) throw new Error(`the handshake did not fail within 10 s; health: ${JSON.stringify(health)}`);
        health = (await (await fetch(gw.url('/health'))).json()) as typeof health;
      }
      expect(health.status).to.equal('degraded');
      expect(health.failed).to.deep.equal(['billing']);
      const lastError = String(health.servers!.billing!.lastError);
      expect(lastError).to.match(/^Server "billing" refused initialize: /);
      expect(lastError).to.include(why);
      if (body === long) expect(lastError).to.not.include(long);

      const res = await postJson(gw.url('/billing/mcp'), { jsonrpc: '2.0', id: 7, method: 'tools/list' });
      const answer = res.json as { id: number; error?: { message: string } };
      expect(answer.id, res.text).to.equal(7);
      expect(answer.error?.message, res.text).to.include(why);
    });
  }
});
