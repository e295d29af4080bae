import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

/**
 * A real OAuth 2.0 / OpenID authorization server (oidc-provider 9) on 127.0.0.1, port 0, with its dev
 * interactions, for tests of the gateway's PKCE flow. Its clients are "native" (RFC 8252), so a
 * registered `http://localhost/<path>` matches the same path on any port of a gateway started on port 0.
 */

interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}
type ProviderClass = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

export interface OidcClient {
  readonly clientId: string;
  /** undefined for the public client */
  readonly clientSecret?: string;
  readonly tokenEndpointAuthMethod: 'none' | 'client_secret_post' | 'client_secret_basic';
}

export interface OidcServer {
  readonly issuer: string;
  readonly authorizationUrl: string;
  readonly tokenUrl: string;
  /** the userinfo endpoint: a good `validate_url` */
  readonly userinfoUrl: string;
  /** token_endpoint_auth_method "none", PKCE required */
  readonly publicClient: OidcClient;
  /** client_secret_post */
  readonly confidentialClient: OidcClient;
  /** client_secret_basic */
  readonly basicClient: OidcClient;
  /** what the provider logged as server-side errors (for diagnosing a failing test) */
  readonly serverErrors: string[];
  close(): Promise<void>;
}

export interface OidcServerOptions {
  /** redirect URIs registered for every client, without a port (default: http://localhost/mailbox/auth/callback) */
  redirectUris?: string[];
  /** scopes the provider knows besides openid, offline_access and profile */
  extraScopes?: string[];
  /** access token lifetime, seconds (default 3600) */
  accessTokenTtl?: number;
  /** turn on token revocation (RFC 7009, at `${issuer}/token/revocation`) and introspection (RFC 7662, at `${issuer}/token/introspection`) */
  revocationAndIntrospection?: boolean;
}

let providerClass: ProviderClass | undefined;

/**
 * Runs `fn` without oidc-provider's start-up notices ("Unsupported runtime" on Node 20, development-only
 * keys, adapter and interactions): all expected here, and noise in the test output.
 */
async function quietly<T>(fn: () => T | Promise<T>): Promise<T> {
  const { warn, info } = console;
  const filter = (write: (...args: unknown[]) => void) => (...args: unknown[]) => {
    if (!String(args[0]).startsWith('oidc-provider')) write(...args);
  };
  console.warn = filter(warn);
  console.info = filter(info);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

async function loadProvider(): Promise<ProviderClass> {
  const moduleName = 'oidc-provider'; // untyped package: a non-literal specifier keeps tsc from asking for types
  providerClass ??= await quietly(async () => ((await import(moduleName)) as { default: ProviderClass }).default);
  return providerClass;
}

export async function startOidcServer(options: OidcServerOptions = {}): Promise<OidcServer> {
  const Provider = await loadProvider();
  const redirectUris = options.redirectUris ?? ['http://localhost/mailbox/auth/callback'];
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const http = createServer((req, res) => {
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const publicClient: OidcClient = { clientId: 'fluidmcp-public', tokenEndpointAuthMethod: 'none' };
  const confidentialClient: OidcClient = { clientId: 'fluidmcp-confidential', clientSecret: 'confidential-client-secret-6f1d2c', tokenEndpointAuthMethod: 'client_secret_post' };
  const basicClient: OidcClient = { clientId: 'fluidmcp-basic', clientSecret: 'basic-client-secret-93ab7e', tokenEndpointAuthMethod: 'client_secret_basic' };
  const clients = [publicClient, confidentialClient, basicClient].map((c) => ({
    client_id: c.clientId,
    ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
    token_endpoint_auth_method: c.tokenEndpointAuthMethod,
    application_type: 'native',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }));

  const provider = await quietly(() => new Provider(issuer, providerConfiguration(clients, options)));
  const serverErrors: string[] = [];
  provider.on('server_error', (_ctx: unknown, err: unknown) => serverErrors.push(String((err as Error)?.stack ?? err)));
  handler = provider.callback();

  return {
    issuer,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    userinfoUrl: `${issuer}/me`,
    publicClient,
    confidentialClient,
    basicClient,
    serverErrors,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

/** A client may revoke or introspect only the tokens issued to it. */
const ownToken = (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }): boolean => token.clientId === client.clientId;

/** The configuration shared by the tests' provider: every default that would print a notice is set. */
export function providerConfiguration(clients: Record<string, unknown>[], options: OidcServerOptions = {}): Record<string, unknown> {
  return {
    clients,
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, name: id, preferred_username: id }),
    }),
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    scopes: ['openid', 'offline_access', 'profile', ...(options.extraScopes ?? ['mail.read'])],
    features: {
      devInteractions: { enabled: true },
      ...(options.revocationAndIntrospection ? { revocation: { enabled: true, allowedPolicy: ownToken }, introspection: { enabled: true, allowedPolicy: ownToken } } : {}),
    },
    pkce: { required: () => true },
    // refresh tokens for every client allowed the grant, without the offline_access + prompt=consent dance
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    cookies: { keys: ['fluidmcp-test-cookie-key-0123456789'] },
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: options.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 86_400,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  };
}

export interface ProviderLoginOptions {
  /** the login name typed on the provider's sign-in page (default "alice") */
  login?: string;
  password?: string;
  /** abort at the provider instead of signing in: the provider answers the callback with access_denied */
  deny?: boolean;
}

/**
 * Signs in through the provider's dev interactions over real HTTP, as a browser would: GET the gateway's
 * login URL, follow redirects to the provider keeping its cookies, submit the login and consent forms,
 * and stop at the first redirect that leaves the provider. Returns that URL (the gateway's callback with
 * `code`, `state` and `iss`) without requesting it.
 */
export async function loginThroughProvider(gatewayLoginUrl: string, options: ProviderLoginOptions = {}): Promise<string> {
  const cookies = new Map<string, string>();
  let providerOrigin: string | undefined;
  let url = gatewayLoginUrl;
  let method: 'GET' | 'POST' = 'GET';
  let form: string | undefined;

  for (let step = 0; step < 20; step++) {
    const onProvider = providerOrigin !== undefined && new URL(url).origin === providerOrigin;
    const headers: Record<string, string> = {};
    if (onProvider && cookies.size > 0) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await request(url, { method, headers, body: form, headersTimeout: 10_000, bodyTimeout: 10_000 });
    if (onProvider) storeCookies(cookies, res.headers['set-cookie']);
    method = 'GET';
    form = undefined;

    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      await res.body.dump();
      const next = new URL(String(res.headers.location), url);
      if (providerOrigin === undefined) {
        providerOrigin = next.origin;
      } else if (next.origin !== providerOrigin) {
        return next.href;
      }
      url = next.href;
      continue;
    }

    const text = await res.body.text();
    if (!onProvider) throw new Error(`${gatewayLoginUrl} answered ${res.statusCode} instead of a redirect to the provider: ${text.slice(0, 500)}`);
    if (res.statusCode !== 200) throw new Error(`the provider answered ${res.statusCode} at ${url}: ${text.slice(0, 500)}`);
    const prompt = /name="prompt" value="(\w+)"/.exec(text)?.[1];
    const action = /<form[^>]*action="([^"]+)"/.exec(text)?.[1];
    if (!prompt || !action) throw new Error(`no interaction form at ${url}: ${text.slice(0, 500)}`);
    if (options.deny) {
      url = new URL(`${new URL(url).pathname.replace(/\/$/, '')}/abort`, url).href;
      continue;
    }
    url = new URL(action.replace(/&amp;/g, '&'), url).href;
    method = 'POST';
    form =
      prompt === 'login'
        ? new URLSearchParams({ prompt, login: options.login ?? 'alice', password: options.password ?? 'any-password' }).toString()
        : new URLSearchParams({ prompt }).toString();
  }
  throw new Error(`the login from ${gatewayLoginUrl} did not come back to the gateway within 20 steps`);
}

function storeCookies(jar: Map<string, string>, header: string | string[] | undefined): void {
  const lines = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const line of lines) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair!.indexOf('=');
    if (eq <= 0) continue;
    const name = pair!.slice(0, eq).trim();
    const value = pair!.slice(eq + 1).trim();
    const expired = attributes.some((a) => {
      const [k, v] = a.trim().split('=');
      const key = k!.toLowerCase();
      return (key === 'max-age' && Number(v) <= 0) || (key === 'expires' && Date.parse(v ?? '') < Date.now());
    });
    if (expired || value === '') jar.delete(name);
    else jar.set(name, value);
  }
}
