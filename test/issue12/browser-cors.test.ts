import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { authOAuth2Pkce, proxyJsonRpc, transportSse, transportStdio } from '../../index.js';
import { everythingEntry, startGateway, type TestGateway } from '../helpers/gateway.js';

/** What the page reports back: each step's status and the headers its script could read. */
interface PageResult {
  initStatus: number;
  sessionId: string | null;
  listStatus: number;
  tools: string[];
  unauthorized: { status: number; wwwAuthenticate: string | null; error: string } | undefined;
}

/**
 * Issue 12, item 3, in a real browser: a page on another loopback origin (as the Inspector on
 * localhost:6274 is) initializes over Streamable HTTP, reads Mcp-Session-Id, and calls with it
 * (which needs a preflight for the mcp-* headers); a 401 carries a WWW-Authenticate the page can read.
 */
describe('issue 12: a browser client on another origin uses the gateway (Chromium)', function () {
  this.timeout(60_000);
  let gw: TestGateway;
  let page: Server;
  let browser: Browser | undefined;

  before(async () => {
    gw = await startGateway(
      {
        everything: everythingEntry(),
        gmail: {
          ...everythingEntry(),
          auth: {
            type: 'oauth2',
            flow: 'pkce',
            authorization_url: 'https://accounts.example/authorize',
            // no provider is reachable from the tests: its tokens are knowingly accepted unverified
            validate: 'none',
            token_url: 'https://accounts.example/token',
            scopes: ['mail.read'],
            client_id_env: 'GMAIL_CLIENT_ID',
            env_var_name: 'GMAIL_ACCESS_TOKEN',
          },
        },
      },
      { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: { GMAIL_CLIENT_ID: 'gmail-client' } })] },
    );
    page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>client</title>');
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', () => r()));
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((r) => (page ? page.close(() => r()) : r()));
    await gw?.stop();
  });

  it('initializes, reads Mcp-Session-Id, lists tools with the session, and reads a 401\'s WWW-Authenticate', async () => {
    const tab = await browser!.newPage();
    const origin = `http://localhost:${(page.address() as AddressInfo).port}`;
    await tab.goto(`${origin}/`);
    const gateway = `http://127.0.0.1:${gw.kernel.address().port}`;
    const result = await tab.evaluate(async (base): Promise<PageResult> => {
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
      const init = await fetch(`${base}/everything/mcp`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'page', version: '1' } } }),
      });
      await init.text();
      const sessionId = init.headers.get('mcp-session-id');
      const list = await fetch(`${base}/everything/mcp`, {
        method: 'POST',
        headers: { ...headers, 'mcp-session-id': sessionId ?? '', 'last-event-id': '0' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      const listed = (await list.json()) as { result?: { tools: { name: string }[] } };
      return {
        initStatus: init.status,
        sessionId,
        listStatus: list.status,
        tools: (listed.result?.tools ?? []).map((t) => t.name),
        unauthorized: await (async () => {
          const res = await fetch(`${base}/gmail/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }) });
          return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate'), error: ((await res.json()) as { error: { code: string } }).error.code };
        })(),
      };
    }, gateway);
    expect(result.initStatus).to.equal(200);
    expect(result.sessionId).to.match(/^[0-9a-f-]{16,}$/);
    expect(result.listStatus).to.equal(200);
    expect(result.tools).to.include('echo');
    expect(result.unauthorized?.status).to.equal(401);
    expect(result.unauthorized?.error).to.equal('FMCP_ERR_UNAUTHORIZED');
    expect(result.unauthorized?.wwwAuthenticate).to.match(/^Bearer /);
    await tab.close();
  });
});
