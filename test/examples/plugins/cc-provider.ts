import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { providerConfiguration } from '../../helpers/oidc.js';

/**
 * oidc-provider 9 on 127.0.0.1, port 0, with the client credentials grant and token introspection on,
 * for the oauth2-client-credentials example plugin. (test/helpers/oidc.ts starts one for the PKCE flow;
 * its clients cannot use this grant.) Every request to /token passes through a counter first.
 */

interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type ProviderClass = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

export interface TokenRequestSeen {
  /** the client authenticated with HTTP Basic */
  readonly basic: boolean;
  /** the form fields, the secret left out */
  readonly form: Record<string, string>;
}

export interface CcProvider {
  readonly issuer: string;
  readonly tokenUrl: string;
  /** client_secret_basic, scope reports.read */
  readonly basicClient: { readonly clientId: string; readonly clientSecret: string };
  /** client_secret_post, scope reports.read */
  readonly postClient: { readonly clientId: string; readonly clientSecret: string };
  /** every token request, in order */
  readonly tokenRequests: TokenRequestSeen[];
  /** "ok" lets /token through; "fail" answers 503 with an OAuth error; "hang" never answers */
  mode: 'ok' | 'fail' | 'hang';
  /** what the provider says about a token (RFC 7662), asked as the client it was issued to */
  introspect(token: string, client: { clientId: string; clientSecret: string }): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Runs `fn` without oidc-provider's notices (development keys, in-memory adapter): expected in a test. */
async function quietly<T>(fn: () => T | Promise<T>): Promise<T> {
  const { warn, info } = console;
  const quiet = (write: (...args: unknown[]) => void) => (...args: unknown[]) => {
    if (!String(args[0]).startsWith('oidc-provider')) write(...args);
  };
  console.warn = quiet(warn);
  console.info = quiet(info);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

/** Starts the provider; `tokenTtl` is the client credentials token lifetime in seconds. */
export async function startCcProvider(tokenTtl = 3600): Promise<CcProvider> {
  const moduleName = 'oidc-provider'; // untyped package: a non-literal specifier keeps tsc from asking for types
  const Provider = await quietly(async () => ((await import(moduleName)) as { default: ProviderClass }).default);
  const basicClient = { clientId: 'reports-basic', clientSecret: 'reports-basic-secret-7c1e9a' };
  const postClient = { clientId: 'reports-post', clientSecret: 'reports-post-secret-2b8d44' };
  const clients = [
    { ...basicClient, method: 'client_secret_basic' },
    { ...postClient, method: 'client_secret_post' },
  ].map((c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    token_endpoint_auth_method: c.method,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'reports.read',
  }));
  const base = providerConfiguration(clients, { extraScopes: ['reports.read', 'reports.write'] });
  const configuration = {
    ...base,
    features: { devInteractions: { enabled: false }, clientCredentials: { enabled: true }, introspection: { enabled: true, allowedPolicy: () => true } },
    ttl: { ...(base.ttl as Record<string, unknown>), ClientCredentials: tokenTtl },
  };

  const tokenRequests: TokenRequestSeen[] = [];
  const held: ServerResponse[] = [];
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let state: CcProvider['mode'] = 'ok';
  const http = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/token') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        delete form.client_secret;
        tokenRequests.push({ basic: /^Basic /.test(req.headers.authorization ?? ''), form });
      });
      if (state === 'hang') return void held.push(res);
      if (state === 'fail') {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'maintenance' }));
        return;
      }
    }
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  handler = (await quietly(() => new Provider(issuer, configuration))).callback();

  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    basicClient,
    postClient,
    tokenRequests,
    get mode() {
      return state;
    },
    set mode(value) {
      state = value;
    },
    async introspect(token, client) {
      const res = await request(`${issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token }).toString(),
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      return (await res.body.json()) as Record<string, unknown>;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.destroy();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
