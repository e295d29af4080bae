import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { chromium, type Browser } from 'playwright-core';

/** Headless Debian Chromium, as the team guide launches it. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A native MCP client's redirect listener on loopback (RFC 8252 section 7.3): it answers one page per visit. */
export interface RedirectListener {
  readonly redirectUri: string;
  /** the next URL the browser was sent to */
  next(timeoutMs?: number): Promise<URL>;
  close(): Promise<void>;
}

/** URLs that arrive over time, each handed to the first waiter (or kept until one asks). */
export class UrlQueue {
  private readonly waiting: ((url: URL) => void)[] = [];
  private readonly arrived: URL[] = [];

  /** `late(ms)`: the error message when none arrives in time */
  constructor(private readonly late: (timeoutMs: number) => string) {}

  push(url: URL): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter(url);
    else this.arrived.push(url);
  }

  next(timeoutMs: number): Promise<URL> {
    const ready = this.arrived.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise<URL>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(this.late(timeoutMs))), timeoutMs);
      this.waiting.push((url) => {
        clearTimeout(timer);
        resolve(url);
      });
    });
  }
}

/** Closes a test server and the connections it still holds. */
export const closeServer = (server: Server): Promise<void> =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

export async function startRedirectListener(): Promise<RedirectListener> {
  const urls = new UrlQueue((ms) => `the browser did not come back to the client's redirect URI within ${ms} ms`);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    res.writeHead(url.pathname === '/callback' ? 200 : 404, { 'content-type': 'text/plain' }).end('You can close this window.');
    if (url.pathname !== '/callback') return; // the browser's favicon request
    urls.push(url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    next: (timeoutMs = 20_000) => urls.next(timeoutMs),
    close: () => closeServer(server),
  };
}

/** An OAuthClientProvider as an MCP client implements it, keeping everything in memory. */
export class MemoryOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier = '';
  authorizationUrl?: URL;
  /** set to use a Client ID Metadata Document instead of registration */
  clientMetadataUrl?: string;
  readonly clientState = 'client-state-4f9a';

  constructor(private readonly redirect: string, readonly clientName = 'FluidMCP test client') {}

  get redirectUrl(): string {
    return this.redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.clientName,
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state(): string {
    return this.clientState;
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.client = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }
  codeVerifier(): string {
    return this.verifier;
  }
  /** what the SDK asked to forget (it does on invalid_grant / invalid_client), in order */
  readonly invalidated: string[] = [];
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = '';
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }
  private discovery?: OAuthDiscoveryState;
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state;
  }
  discoveryState(): OAuthDiscoveryState | undefined {
    return this.discovery;
  }
}

export interface BrowserSignIn {
  /** what the consent page said, as text */
  consentText: string;
  /** where the browser ended: the client's redirect URI with code, state and iss */
  callback: URL;
}

/**
 * Does what a person does in the browser an MCP client opens: reads the gateway's consent page and
 * presses "Allow" (or "Deny"), then signs in and consents at the provider (oidc-provider's dev pages).
 */
export async function signInWithBrowser(browser: Browser, authorizationUrl: URL, listener: RedirectListener, options: { deny?: boolean; login?: string } = {}): Promise<BrowserSignIn> {
  const context = await browser.newContext();
  try {
    // nothing leaves loopback (oidc-provider's pages import a web font)
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (route) => route.abort());
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const landed = listener.next();
    await page.goto(authorizationUrl.href, { waitUntil: 'domcontentloaded' });
    const consentText = await page.locator('body').innerText();
    try {
      await page.getByRole('button', { name: options.deny ? 'Deny' : 'Allow', exact: true }).click();
      if (!options.deny) {
        await page.locator('input[name="login"]').fill(options.login ?? 'alice');
        await page.locator('input[name="password"]').fill('any-password');
        await page.getByRole('button', { name: 'Sign-in' }).click();
        await page.getByRole('button', { name: 'Continue' }).click();
      }
    } catch (err) {
      const text = await page.locator('body').innerText().catch(() => '');
      throw new Error(`${(err as Error).message.split('\n')[0]} at ${page.url()}: ${text.slice(0, 600)}`);
    }
    return { consentText, callback: await landed };
  } finally {
    await context.close();
  }
}
