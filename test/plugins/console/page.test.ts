import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Writable } from 'node:stream';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { proxyJsonRpc, transportSse, transportStdio, webConsole } from '../../../index.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { launchChromium } from './browser.js';

const ADMIN = 'admin-token-for-the-browser-test';
const quietLog = () => new Writable({ write: (_c, _e, done) => done() });

interface Summary {
  name: string;
  state: string;
  instances: { pid?: number }[];
}

describe('console: the page in a real browser', function () {
  this.timeout(90_000);
  let browser: Browser | undefined;
  let gateway: TestGateway;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async function () {
    const launched = await launchChromium();
    if (!launched.browser) {
      console.log(`      skipped: ${launched.reason}`);
      this.skip();
    }
    browser = launched.browser;
    gateway = await startGateway(
      { everything: everythingEntry() },
      { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), webConsole()], kernel: { logger: undefined, logLevel: 'info', logDestination: quietLog() } },
    );
  });
  after(async () => {
    await browser?.close();
    await gateway?.stop();
  });
  beforeEach(async () => {
    context = await browser!.newContext({ viewport: { width: 1024, height: 800 } });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
  });
  afterEach(async () => {
    await context?.close();
    expect(pageErrors, 'errors in the page').to.deep.equal([]);
  });

  const row = (name: string) => page.getByRole('row').filter({ has: page.getByRole('rowheader', { name }) });

  it('opens /, and shows everything up', async () => {
    await page.goto(`${gateway.base}/`);
    await page.getByRole('heading', { name: 'Servers' }).waitFor();
    await row('everything').getByText('up', { exact: true }).waitFor({ timeout: 15_000 });
    expect(await row('everything').getByRole('cell').nth(0).textContent()).to.equal('stdio');
  });

  it('opens everything, finds echo, fills message, presses Run and shows the echo', async () => {
    await page.goto(`${gateway.base}/`);
    await page.getByRole('link', { name: 'everything' }).click();
    await page.getByRole('heading', { level: 1, name: /everything/ }).waitFor();
    const echo = page.getByRole('region', { name: 'echo', exact: true });
    await echo.getByLabel('message').fill('hello from Chromium');
    // the page re-renders every second (uptime, charts): what was typed must survive it
    const uptime = page.locator('dt:text-is("Uptime") + dd');
    const shown = await uptime.textContent();
    await page.waitForFunction((before) => document.evaluate('//dt[.="Uptime"]/following-sibling::dd[1]', document, null, XPathResult.STRING_TYPE).stringValue !== before, shown, { timeout: 10_000 });
    expect(await echo.getByLabel('message').inputValue()).to.equal('hello from Chromium');
    await echo.getByRole('button', { name: 'Run' }).click();
    await echo.getByText('Echo: hello from Chromium').waitFor({ timeout: 15_000 });
  });

  it('shows a server\'s sessions with how many of each transport', async () => {
    const clients: Client[] = [];
    try {
      for (const transport of [
        new SSEClientTransport(new URL(gateway.url('/everything/sse'))),
        new SSEClientTransport(new URL(gateway.url('/everything/sse'))),
        new StreamableHTTPClientTransport(new URL(gateway.url('/everything/mcp'))),
      ]) {
        const client = new Client({ name: 'page-sessions', version: '1.0.0' });
        await client.connect(transport);
        clients.push(client);
      }
      await page.goto(`${gateway.base}/#/servers/everything`);
      const sessions = page.locator('dt:text-is("Sessions") + dd');
      await sessions.filter({ hasText: 'legacy' }).waitFor({ timeout: 15_000 });
      expect(await sessions.textContent()).to.equal('3 (1 Streamable HTTP, 2 legacy HTTP+SSE)');
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    }
  });

  it('shows a server killed from outside go down, then up again, without a reload', async () => {
    await page.goto(`${gateway.base}/`);
    const badge = row('everything').locator('.state');
    await badge.getByText('up', { exact: true }).waitFor({ timeout: 15_000 });
    // record every state the badge shows: a restart can be quicker than a look
    await page.evaluate(() => {
      const w = window as unknown as { seen: string[] };
      w.seen = [];
      const target = document.querySelector('tr[data-server="everything"] .state')!.parentElement!;
      new MutationObserver(() => w.seen.push(target.textContent ?? '')).observe(target, { subtree: true, childList: true, characterData: true });
    });
    const before = (await (await fetch(`${gateway.base}/api/servers/everything`)).json()) as Summary;
    const pid = before.instances[0]!.pid!;
    process.kill(pid, 'SIGKILL');
    await page.waitForFunction(() => (window as unknown as { seen: string[] }).seen.some((s) => s === 'down' || s === 'starting'), undefined, { timeout: 15_000 });
    await page.waitForFunction(() => (window as unknown as { seen: string[] }).seen.at(-1) === 'up', undefined, { timeout: 20_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(seen[0]).to.be.oneOf(['down', 'starting']);
    expect(await row('everything').getByRole('cell').nth(6).textContent()).to.equal('1');
    expect(await row('everything').getByRole('cell').nth(8).textContent()).to.include(`process ${pid}`);
    const after = (await (await fetch(`${gateway.base}/api/servers/everything`)).json()) as Summary;
    expect(after.instances[0]!.pid).to.not.equal(pid);
  });

  it('restarts a server after confirmation and says what happened', async () => {
    await page.goto(`${gateway.base}/`);
    await row('everything').getByText('up', { exact: true }).waitFor({ timeout: 15_000 });
    await row('everything').getByRole('button', { name: 'Restart everything' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Restart everything? Every process of this server stops; calls in flight get an error.').waitFor();
    await dialog.getByRole('button', { name: 'Restart', exact: true }).click();
    await page.getByRole('status').getByText('Restarted everything: 1 process stopped, now up.').waitFor({ timeout: 20_000 });
  });

  it('tails the log live and filters it', async () => {
    await page.goto(`${gateway.base}/`);
    gateway.kernel.log.warn({ server: 'everything' }, 'a line for the browser test');
    const log = page.getByRole('region', { name: 'Log' });
    await log.getByText('a line for the browser test').waitFor({ timeout: 15_000 });
    await log.getByLabel('Filter the log').fill('nothing matches this text');
    await log.getByText('a line for the browser test').waitFor({ state: 'detached' });
    await log.getByLabel('Filter the log').fill('browser test');
    await log.getByText('a line for the browser test').waitFor();
  });
});

describe('console: the page with --admin-token', function () {
  this.timeout(90_000);
  let browser: Browser | undefined;
  let gateway: TestGateway;

  before(async function () {
    const launched = await launchChromium();
    if (!launched.browser) {
      console.log(`      skipped: ${launched.reason}`);
      this.skip();
    }
    browser = launched.browser;
    gateway = await startGateway({ everything: everythingEntry() }, { plugins: [transportStdio(), proxyJsonRpc(), webConsole({ adminToken: ADMIN })] });
  });
  after(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  it('asks for the admin token, refuses a wrong one, and opens with the right one', async () => {
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${gateway.base}/`);
      await page.getByLabel('Admin token').fill('wrong-token-wrong-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').getByText('That is not the admin token this gateway was started with (--admin-token)').waitFor();
      await page.getByLabel('Admin token').fill(ADMIN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'everything' }) }).getByText('up', { exact: true }).waitFor({ timeout: 15_000 });
      const cookies = await context.cookies();
      expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).to.deep.equal([['fmcp_console', true, 'Strict']]);
      expect(await page.evaluate(() => document.cookie)).to.equal('');
    } finally {
      await context.close();
    }
  });
});
