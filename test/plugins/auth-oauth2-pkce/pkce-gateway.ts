import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  authOAuth2Pkce,
  definePlugin,
  MemoryStateStore,
  PENDING_STATE,
  proxyJsonRpc,
  transportSse,
  transportStdio,
  type JsonObject,
  type KernelOptions,
  type PendingStateStore,
  type Plugin,
  type ServerEntry,
} from '../../../index.js';
import type { AuthOAuth2PkceOptions } from '../../../plugins/auth-oauth2-pkce/index.js';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import type { OidcServer } from '../../helpers/oidc.js';
import { repoRoot } from '../../helpers/paths.js';

export const mailboxServer = join(repoRoot, 'examples', 'mailbox', 'server.mjs');

/** Server names the test provider knows redirect URIs for. */
export const PKCE_SERVERS = ['mailbox', 'mailbox-post', 'mailbox-basic', 'mailbox-checked', 'mailbox-down', 'mailbox-slow'];
export const redirectUris = (): string[] => PKCE_SERVERS.map((name) => `http://localhost/${name}/auth/callback`);

/** The environment the plugin reads client ids and secrets from. */
export function clientEnv(oidc: OidcServer): Record<string, string> {
  return {
    MAILBOX_CLIENT_ID: oidc.publicClient.clientId,
    POST_CLIENT_ID: oidc.confidentialClient.clientId,
    POST_CLIENT_SECRET: oidc.confidentialClient.clientSecret!,
    BASIC_CLIENT_ID: oidc.basicClient.clientId,
    BASIC_CLIENT_SECRET: oidc.basicClient.clientSecret!,
  };
}

export function mailboxEntry(auth?: Record<string, unknown>): ServerEntry {
  const entry: ServerEntry = { command: process.execPath, args: [mailboxServer] };
  if (auth) entry.auth = { type: 'oauth2', flow: 'pkce', ...auth };
  return entry;
}

export function pkceAuth(oidc: OidcServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    authorization_url: oidc.authorizationUrl,
    token_url: oidc.tokenUrl,
    scopes: ['openid', 'profile', 'mail.read'],
    client_id_env: 'MAILBOX_CLIENT_ID',
    env_var_name: 'MAILBOX_ACCESS_TOKEN',
    ...extra,
  };
}

/** A pending-state store that remembers what was put, so a test can see the verifier the plugin chose. */
export class RecordingStore implements PendingStateStore {
  readonly puts: { key: string; value: JsonObject }[] = [];
  private readonly inner = new MemoryStateStore(100);
  async put(key: string, value: JsonObject, ttlMs: number): Promise<void> {
    this.puts.push({ key, value });
    await this.inner.put(key, value, ttlMs);
  }
  take(key: string): Promise<JsonObject | undefined> {
    return this.inner.take(key);
  }
  size(): Promise<number> {
    return this.inner.size();
  }
}

export const storePlugin = (store: PendingStateStore): Plugin =>
  definePlugin({ name: 'test-pending-store', register: (api) => api.provide(PENDING_STATE, store) });

export interface PkceGatewayOptions {
  plugin?: AuthOAuth2PkceOptions;
  proxy?: Parameters<typeof proxyJsonRpc>[0];
  kernel?: KernelOptions;
  extraPlugins?: Plugin[];
}

/** A real gateway (stdio + proxy + sse + this plugin) on port 0 serving `servers`. */
export function startPkceGateway(oidc: OidcServer, servers: Record<string, ServerEntry>, options: PkceGatewayOptions = {}): Promise<TestGateway> {
  return startGateway(servers, {
    kernel: options.kernel,
    plugins: [
      transportStdio(),
      proxyJsonRpc(options.proxy),
      transportSse(),
      authOAuth2Pkce({ env: clientEnv(oidc), ...options.plugin }),
      ...(options.extraPlugins ?? []),
    ],
  });
}

/** The gateway's login URL as users see it (the public URL is http://localhost:<port>). */
export const loginUrl = (gw: TestGateway, name: string): string => `http://localhost:${gw.kernel.address().port}/${name}/auth/login`;

/** A TCP port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** An HTTP endpoint that accepts connections and never answers; `close()` ends them. */
export async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** GET with fetch, no redirects followed. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Record<string, unknown>; text: string }> {
  const res = await fetch(url, { redirect: 'manual', headers });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the test looks at text
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** The message of the gateway's JSON error body. */
export const errorMessage = (body: Record<string, unknown>): string => String((body.error as { message?: unknown } | undefined)?.message ?? '');
export const errorCode = (body: Record<string, unknown>): string => String((body.error as { code?: unknown } | undefined)?.code ?? '');
