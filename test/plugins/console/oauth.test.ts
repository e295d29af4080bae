import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { authOAuth2Pkce, proxyJsonRpc, transportSse, transportStdio, webConsole } from '../../../index.js';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { clientEnv, mailboxEntry, pkceAuth } from '../auth-oauth2-pkce/pkce-gateway.js';
import { launchChromium } from './browser.js';

describe('console: "Sign in" for an OAuth package in a real browser', function () {
  this.timeout(90_000);
  let browser: Browser | undefined;
  let oidc: OidcServer;
  let gateway: TestGateway;

  before(async function () {
    const launched = await launchChromium();
    if (!launched.browser) {
      console.log(`      skipped: ${launched.reason}`);
      this.skip();
    }
    browser = launched.browser;
    oidc = await startOidcServer({ redirectUris: ['http://localhost/mailbox/auth/callback'] });
    gateway = await startGateway(
      { mailbox: { ...mailboxEntry(pkceAuth(oidc)), env: { MAILBOX_USERINFO_URL: oidc.userinfoUrl } } },
      { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: clientEnv(oidc) }), webConsole()] },
    );
  });
  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await oidc?.close();
  });

  it('signs in through the provider in a pop-up, keeps the token in session storage only, and calls a tool with it', async () => {
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      // the provider sends the browser back to the gateway's public URL: the console must be on that origin
      const base = gateway.kernel.publicUrl();
      expect(base).to.match(/^http:\/\/localhost:\d+$/);
      await page.goto(`${base}/#/servers/mailbox`);
      await page.getByRole('heading', { level: 1, name: /mailbox/ }).waitFor();
      await page.getByRole('alert').filter({ hasText: '"mailbox" needs a Bearer token' }).first().waitFor({ timeout: 15_000 });

      const popupOpened = context.waitForEvent('page');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      const popup = await popupOpened;
      await popup.locator('input[name="login"]').fill('alice');
      await popup.locator('input[name="password"]').fill('any-password');
      await popup.locator('button[type="submit"]').click();
      await popup.locator('button[type="submit"]', { hasText: /continue/i }).click();
      await popup.waitForEvent('close', { timeout: 20_000 });

      await page.getByRole('status').getByText('Signed in to mailbox.').waitFor({ timeout: 15_000 });
      const whoami = page.getByRole('region', { name: 'whoami', exact: true });
      await whoami.getByRole('button', { name: 'Run' }).click();
      await whoami.getByText('"user":"alice"').waitFor({ timeout: 20_000 });

      const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage), cookie: document.cookie }));
      expect(stored).to.deep.equal({ session: ['fluidmcp.token.mailbox'], local: [], cookie: '' });
      expect(await page.getByRole('main').textContent()).not.to.include(await page.evaluate(() => sessionStorage.getItem('fluidmcp.token.mailbox')!));
    } finally {
      await context.close();
    }
  });
});
