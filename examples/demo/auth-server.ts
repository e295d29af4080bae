import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/**
 * The demo's authorization server: oidc-provider 9 (a real OAuth 2.0 / OpenID server) on loopback,
 * in memory, with development keys and its built-in sign-in pages, a public client for the gateway
 * that must use PKCE, and one password for every login name. For this offline demo only.
 */

export interface DemoAuthServerOptions {
  /** loopback port to listen on */
  port: number;
  clientId: string;
  /** the gateway's callback for the mailbox, registered exactly */
  redirectUri: string;
  /** the password every demo user signs in with */
  password: string;
}

export interface DemoAuthServer {
  readonly issuer: string;
  close(): Promise<void>;
}

/** The few parts of oidc-provider's Koa context this file touches. */
interface KoaContext {
  method: string;
  path: string;
  req: IncomingMessage & { body?: string };
  status: number;
  type: string;
  body: unknown;
  is(type: string): string | false | null;
}
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(fn: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void;
}
type ProviderClass = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

/**
 * oidc-provider prints notices meant for people deploying it (on Node 20: "Unsupported runtime", though the
 * whole flow works; development keys; in-memory storage; dev sign-in pages). All of them are true of this
 * demo by design, so start.ts says so in one line instead.
 */
export function quietProviderNotices(): void {
  for (const level of ['warn', 'info'] as const) {
    const write = console[level];
    console[level] = (...args: unknown[]) => {
      if (!String(args[0]).startsWith('oidc-provider')) write(...args);
    };
  }
}

export async function startDemoAuthServer(options: DemoAuthServerOptions): Promise<DemoAuthServer> {
  const moduleName = 'oidc-provider'; // no type declarations: a non-literal specifier keeps tsc from asking for them
  const Provider = ((await import(moduleName)) as { default: ProviderClass }).default;
  const issuer = `http://127.0.0.1:${options.port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: options.clientId,
        token_endpoint_auth_method: 'none',
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, name: id, preferred_username: id }),
    }),
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    scopes: ['openid', 'offline_access', 'profile', 'mail.read'],
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    cookies: { keys: [`fluidmcp-demo-${process.pid}-${Date.now()}`] },
    clientBasedCORS: () => false,
    ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 86_400, Interaction: 600, Session: 3600, Grant: 3600 },
  });

  // the built-in sign-in page takes any password: this one checks it before the page's own handler runs
  provider.use(async (ctx, next) => {
    if (ctx.method !== 'POST' || !/^\/interaction\/[A-Za-z0-9_-]+$/.test(ctx.path) || !ctx.is('application/x-www-form-urlencoded')) return next();
    const raw = await readForm(ctx.req);
    const form = new URLSearchParams(raw);
    if (form.get('prompt') === 'login' && form.get('password') !== options.password) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = wrongPasswordPage(ctx.path);
      return;
    }
    ctx.req.body = raw; // oidc-provider reads an already-read form body from here
    return next();
  });

  const handler = provider.callback();
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    issuer,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readForm(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('the sign-in form is too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function wrongPasswordPage(path: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Wrong password</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>Wrong password</h1>
<p>The FluidMCP demo accepts any login name with the password printed in the terminal where you ran <code>npm start</code>.</p>
<p><a href="${path}">Try again</a></p>
</body></html>`;
}
