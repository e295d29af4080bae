#!/usr/bin/env node
/**
 * `npm run screenshots`: takes the console screenshots the README shows (docs/console-*.png) from a real
 * gateway in headless Chromium, so they stay true to the page. Serves examples/demo/config.json's servers
 * in-process on a free port (the mailbox's provider is not started: the shots do not sign in), makes a
 * few calls so the charts have data, and writes the files.
 */
import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { authOAuth2Pkce, createKernel, loadConfigFile, proxyJsonRpc, transportSse, transportStdio, webConsole } from '../../index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const docs = join(repoRoot, 'docs');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function main(): Promise<void> {
  const { servers } = loadConfigFile(join(repoRoot, 'examples', 'demo', 'config.json'));
  const kernel = createKernel({ port: 0, logLevel: 'info', logDestination: pino.destination({ dest: '/dev/null', sync: true }), servers })
    .use(transportStdio())
    .use(proxyJsonRpc())
    .use(transportSse())
    .use(authOAuth2Pkce({ env: { DEMO_MAILBOX_CLIENT_ID: 'fluidmcp-demo' } }))
    .use(webConsole());
  await kernel.start();
  const base = kernel.publicUrl();
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    mkdirSync(docs, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => process.stderr.write(`screenshots: error in the page: ${err.message}\n`));
    await page.goto(`${base}/`);
    await page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'everything' }) }).getByText('up', { exact: true }).waitFor({ timeout: 30_000 });
    // a few seconds of calls, so the activity charts show something
    for (let second = 0; second < 6; second++) {
      await Promise.all(Array.from({ length: 5 + second * 3 }, (_, i) =>
        fetch(`${base}/api/servers/everything/tools/echo`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-fluidmcp-console': '1' },
          body: JSON.stringify({ message: `call ${second}.${i}` }),
        }).then((r) => r.arrayBuffer())));
      await new Promise((r) => setTimeout(r, 1000));
    }
    kernel.log.info({ server: 'everything' }, 'screenshot: calls done');
    await page.getByRole('heading', { name: 'Activity' }).scrollIntoViewIfNeeded();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(docs, 'console-overview.png'), fullPage: true });

    await page.getByRole('link', { name: 'everything' }).click();
    const echo = page.getByRole('region', { name: 'echo', exact: true });
    await echo.getByLabel('message').fill('Hello from the console');
    await echo.getByRole('button', { name: 'Run' }).click();
    await echo.getByText('Echo: Hello from the console').waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(docs, 'console-server.png'), clip: { x: 0, y: 0, width: 1280, height: 1400 }, fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('link', { name: '← All servers' }).click();
    await page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'everything' }) }).getByText('up', { exact: true }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(docs, 'console-phone.png') });
    process.stdout.write(`wrote ${['console-overview.png', 'console-server.png', 'console-phone.png'].map((f) => join('docs', f)).join(', ')}\n`);
  } finally {
    await browser.close();
    await kernel.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`screenshots: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
