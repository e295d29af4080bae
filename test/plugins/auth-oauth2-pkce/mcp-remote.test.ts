import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { repoRoot } from '../../helpers/paths.js';
import { closeServer, launchChromium, UrlQueue } from './mcp-login.js';
import { closedPort, pkceAuth, startPkceGateway } from './pkce-gateway.js';

const mcpRemote = join(repoRoot, 'node_modules', 'mcp-remote', 'dist', 'proxy.js');

/** Where the test's stand-in for a desktop browser reports the URLs mcp-remote asks it to open. */
interface OpenedUrls {
  readonly url: string;
  next(timeoutMs?: number): Promise<URL>;
  close(): Promise<void>;
}

async function startOpenedUrls(): Promise<OpenedUrls> {
  const urls = new UrlQueue((ms) => `mcp-remote opened no browser within ${ms} ms`);
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      res.writeHead(204).end();
      urls.push(new URL(body.trim()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/opened`,
    next: (timeoutMs = 30_000) => urls.next(timeoutMs),
    close: () => closeServer(server),
  };
}

/** mcp-remote as a client application runs it: a child process speaking newline-delimited JSON-RPC on stdio. */
class StdioPeer {
  private readonly answers = new Map<number, (message: Record<string, unknown>) => void>();
  private readonly early = new Map<number, Record<string, unknown>>();
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not a JSON-RPC line
      }
      if (typeof message.id !== 'number') return;
      const waiter = this.answers.get(message.id);
      if (waiter) waiter(message);
      else this.early.set(message.id, message);
    });
    createInterface({ input: child.stderr }).on('line', (line) => this.stderr.push(line));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  send(message: Record<string, unknown>): void {
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  }

  request(id: number, method: string, params: Record<string, unknown>, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    this.send({ id, method, params });
    const ready = this.early.get(id);
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} within ${timeoutMs} ms; mcp-remote said:\n${this.stderr.slice(-30).join('\n')}`)), timeoutMs);
      this.answers.set(id, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }
}

/** true while any process of the group `pgid` is alive */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('auth-oauth2-pkce with mcp-remote (npm) as the MCP client, its browser step in Chromium', function () {
  this.timeout(120_000);
  let oidc: OidcServer;
  let gw: TestGateway;
  let browser: Browser;
  let opened: OpenedUrls;
  let folder: string;
  let peer: StdioPeer | undefined;

  before(async () => {
    oidc = await startOidcServer({ redirectUris: ['http://localhost/files/auth/callback'] });
    gw = await startPkceGateway(oidc, { files: { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } } }, { plugin: { tokenKeys: [randomBytes(32).toString('base64url')] } });
    browser = await launchChromium();
    opened = await startOpenedUrls();
    folder = await mkdtemp(join(tmpdir(), 'fmcp-mcp-remote-'));
  });

  after(async () => {
    const child = peer?.child;
    if (child?.pid !== undefined && groupAlive(child.pid)) {
      process.kill(-child.pid, 'SIGKILL');
      await peer!.exited;
    }
    await browser?.close();
    await opened?.close();
    await gw?.stop();
    await oidc?.close();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('registers, opens the browser, gets the code on its own callback port and proxies initialize, tools/list and tools/call', async () => {
    // the "browser" mcp-remote opens: `open` runs its bundled xdg-open, which without a desktop runs $BROWSER <url>
    const opener = join(folder, 'browser');
    await writeFile(opener, `#!${process.execPath}\nfetch(process.env.FMCP_TEST_OPENED, { method: 'POST', body: process.argv[2] }).then(() => process.exit(0), () => process.exit(1));\n`);
    await chmod(opener, 0o755);
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: folder, MCP_REMOTE_CONFIG_DIR: join(folder, 'mcp-auth'), BROWSER: opener, FMCP_TEST_OPENED: opened.url };
    for (const name of ['DISPLAY', 'WAYLAND_DISPLAY', 'XDG_CURRENT_DESKTOP', 'DESKTOP_SESSION', 'KDE_FULL_SESSION', 'GNOME_DESKTOP_SESSION_ID']) delete env[name];
    const callbackPort = await closedPort();
    const serverUrl = `${gw.kernel.publicUrl()}/files/mcp`;
    // its own process group, so the test can tell that nothing it started is left
    const child = spawn(process.execPath, [mcpRemote, serverUrl, String(callbackPort)], { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    peer = new StdioPeer(child);

    // the person's part: the gateway's consent page, then the provider's sign-in, in Chromium
    const authorizationUrl = await opened.next();
    expect(authorizationUrl.href.startsWith(`${gw.kernel.publicUrl()}/files/authorize?`), authorizationUrl.href).to.equal(true);
    expect(authorizationUrl.searchParams.get('redirect_uri')).to.equal(`http://localhost:${callbackPort}/oauth/callback`);
    expect(authorizationUrl.searchParams.get('resource')).to.equal(serverUrl);
    const context = await browser.newContext();
    let consentText: string;
    let landedText: string;
    try {
      await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (route) => route.abort());
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      await page.goto(authorizationUrl.href, { waitUntil: 'domcontentloaded' });
      consentText = await page.locator('body').innerText();
      await page.getByRole('button', { name: 'Allow', exact: true }).click();
      await page.locator('input[name="login"]').fill('alice');
      await page.locator('input[name="password"]').fill('any-password');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL((url) => url.host === `localhost:${callbackPort}` && url.pathname === '/oauth/callback');
      landedText = await page.locator('body').innerText();
    } finally {
      await context.close();
    }
    expect(consentText).to.include('Allow access to files?');
    expect(consentText).to.include('MCP CLI Proxy');
    expect(consentText).to.include(`localhost:${callbackPort}`);
    expect(landedText).to.include('Authorization successful!');

    // the client's part, over stdio
    const init = await peer.request(1, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fmcp-mcp-remote-test', version: '1.0.0' } });
    expect((init.result as { serverInfo?: { name?: string } } | undefined)?.serverInfo?.name, JSON.stringify(init)).to.be.a('string').and.not.equal('');
    peer.send({ method: 'notifications/initialized' });
    const list = await peer.request(2, 'tools/list', {});
    expect(((list.result as { tools: { name: string }[] }).tools).map((t) => t.name)).to.include('get-env');
    const call = await peer.request(3, 'tools/call', { name: 'get-env', arguments: {} });
    const text = (call.result as { content: { text: string }[] }).content[0]!.text;
    const providerToken = (JSON.parse(text) as Record<string, string>).PACKAGE_TOKEN!;
    expect(providerToken).to.be.a('string').and.not.equal('');

    // the provider's token is real (its userinfo takes it); mcp-remote holds only the gateway's sealed tokens
    const me = await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${providerToken}` } });
    expect(me.status).to.equal(200);
    const store = join(folder, 'mcp-auth', 'mcp-remote-v1');
    const tokensFile = (await readdir(store)).find((f) => f.endsWith('_tokens.json'));
    expect(tokensFile, String(await readdir(store))).to.be.a('string');
    const saved = await readFile(join(store, tokensFile!), 'utf8');
    const tokens = JSON.parse(saved) as { access_token: string; refresh_token?: string; token_type: string };
    expect(tokens.access_token.split('.')).to.have.length(5);
    expect(tokens.refresh_token?.split('.')).to.have.length(5);
    expect(saved).to.not.include(providerToken);
    const sealedCall = await fetch(`${gw.base}/files/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens.access_token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'get-env', arguments: {} } }),
    });
    expect(sealedCall.status).to.equal(200);

    // closing its stdin ends it; nothing it started is left
    child.stdin.end();
    const ended = await Promise.race([peer.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000).unref())]);
    if (!ended) process.kill(-child.pid!, 'SIGTERM');
    await peer.exited;
    expect(ended, `mcp-remote did not exit when its stdin closed:\n${peer.stderr.slice(-20).join('\n')}`).to.equal(true);
    expect(groupAlive(child.pid!)).to.equal(false);
  });
});
