import {
  errors,
  sendJson,
  type EventBus,
  type JsonObject,
  type LoginOutcome,
  type Logger,
  type PendingStateStore,
  type RequestContext,
  type ServerCatalog,
  type ServerDefinition,
} from '../../core/index.js';
import type { PkceAuthConfig } from './config.js';
import { challengeS256, createState, createVerifier } from './pkce.js';
import { STRATEGY_KEY, type PkceStrategy } from './strategy.js';
import { providerText, readClientCredentials, requestToken } from './token-endpoint.js';

export interface LoginFlowOptions {
  readonly pendingLoginTtlMs: number;
  readonly providerTimeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
  /** where login.outcome goes */
  readonly events?: EventBus;
  /** told of every token answer the gateway hands to a client */
  readonly handedOut?: (server: ServerDefinition, tokenData: JsonObject) => void;
}

/** A login between /auth/login and /auth/callback, kept in the pending-state store under its `state`. */
interface PendingLogin extends JsonObject {
  package: string;
  verifier: string;
  redirect_uri: string;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };
export const SUCCESS_MESSAGE = 'Authentication successful! Use the access_token in Authorization header.';
export const REFRESH_MESSAGE = 'Token refreshed! Use the new access_token in Authorization header.';

/**
 * The gateway-hosted PKCE flow (RFC 7636): /auth/login sends the user to the provider, /auth/callback
 * exchanges the code and hands the provider's tokens to the client; /auth/refresh renews them. Nothing
 * is kept but the pending login, and only until its callback.
 */
export class LoginFlow {
  constructor(
    private readonly servers: ServerCatalog,
    private readonly strategy: PkceStrategy,
    private readonly store: () => PendingStateStore,
    private readonly publicUrl: () => string,
    private readonly options: LoginFlowOptions,
    private readonly log: Logger,
  ) {}

  loginUrl(server: ServerDefinition): string {
    return `${this.publicUrl()}/${encodeURIComponent(server.name)}/auth/login`;
  }

  redirectUri(server: ServerDefinition): string {
    return `${this.publicUrl()}/${encodeURIComponent(server.name)}/auth/callback`;
  }

  async login(ctx: RequestContext): Promise<void> {
    const { server, config } = this.pkceServer(ctx.params.name!);
    const client = readClientCredentials(server, config, this.options.env);
    const verifier = createVerifier();
    const state = createState();
    const redirectUri = this.redirectUri(server);
    const pending: PendingLogin = { package: server.name, verifier, redirect_uri: redirectUri };
    await this.storeStep(server, 'save', () => this.store().put(state, pending, this.options.pendingLoginTtlMs), 'try again in a moment');

    const target = new URL(config.authorizationUrl);
    for (const [name, value] of Object.entries(config.extraParams)) target.searchParams.set(name, value);
    target.searchParams.set('response_type', 'code');
    target.searchParams.set('client_id', client.clientId);
    target.searchParams.set('redirect_uri', redirectUri);
    if (config.scopes.length > 0) target.searchParams.set('scope', config.scopes.join(' '));
    target.searchParams.set('state', state);
    target.searchParams.set('code_challenge', challengeS256(verifier));
    target.searchParams.set('code_challenge_method', 'S256');

    this.log.info({ server: server.name }, 'login started: redirecting to the provider');
    ctx.res.writeHead(302, { location: target.toString(), 'content-length': 0, ...NO_STORE });
    ctx.res.end();
  }

  async callback(ctx: RequestContext): Promise<void> {
    noStore(ctx);
    const { server, config } = this.pkceServer(ctx.params.name!);
    const state = ctx.query.get('state');
    // one use, whatever follows: the pending login is gone as soon as its state comes back
    const pending = state
      ? ((await this.storeStep(server, 'take', () => this.store().take(state), `retry this callback in a moment, or start a new login at ${this.loginUrl(server)}`)) as PendingLogin | undefined)
      : undefined;
    if (!pending || pending.package !== server.name) {
      this.outcome(server, 'bad_state');
      this.log.info({ server: server.name, reason: pending ? 'state issued for another package' : 'unknown, used or expired state' }, 'callback refused');
      throw errors.FMCP_ERR_BAD_REQUEST(
        `Invalid or expired state parameter: this login was already completed, timed out, or was started for another package. Go to ${this.loginUrl(server)} to start a new login`,
      );
    }
    const providerError = ctx.query.get('error');
    if (providerError !== null) {
      this.outcome(server, 'provider_error');
      const description = ctx.query.get('error_description');
      this.log.info({ server: server.name, error: providerText(providerError, 80) }, 'login failed at the provider');
      throw errors.FMCP_ERR_BAD_REQUEST(
        `The provider did not sign you in to "${server.name}": ${providerText(providerError, 80)}${description ? ` (${providerText(description)})` : ''}. Go to ${this.loginUrl(server)} to try again`,
      );
    }
    const code = ctx.query.get('code');
    if (!code) {
      this.outcome(server, 'bad_request');
      throw errors.FMCP_ERR_BAD_REQUEST(
        `The callback for "${server.name}" has no "code" parameter: open ${this.loginUrl(server)} and let the provider redirect back here`,
      );
    }
    const client = readClientCredentials(server, config, this.options.env);
    const tokenData = await this.logFailure(server, 'code exchange', requestToken({
      server,
      config,
      client,
      grant: { grant_type: 'authorization_code', code, redirect_uri: pending.redirect_uri, code_verifier: pending.verifier },
      timeoutMs: this.options.providerTimeoutMs,
      retryHint: `Go to ${this.loginUrl(server)} to start a new login`,
    })).catch((err: unknown) => {
      this.outcome(server, 'provider_error');
      throw err;
    });
    this.outcome(server, 'success');
    this.options.handedOut?.(server, tokenData);
    this.log.info({ server: server.name }, 'login completed: tokens handed to the client');
    sendJson(ctx.res, 200, { success: true, package: server.name, token_data: tokenData, message: SUCCESS_MESSAGE }, NO_STORE);
  }

  async refresh(ctx: RequestContext): Promise<void> {
    noStore(ctx);
    const { server, config } = this.pkceServer(ctx.params.name!);
    const refreshToken = readRefreshToken(ctx);
    if (!refreshToken) {
      throw errors.FMCP_ERR_BAD_REQUEST(
        `POST /${server.name}/auth/refresh needs a refresh token: send {"refresh_token": "<refresh_token>"} as JSON (or form-encoded)`,
      );
    }
    const client = readClientCredentials(server, config, this.options.env);
    const tokenData = await this.logFailure(server, 'refresh', requestToken({
      server,
      config,
      client,
      grant: { grant_type: 'refresh_token', refresh_token: refreshToken },
      timeoutMs: this.options.providerTimeoutMs,
      retryHint: `Sign in again at ${this.loginUrl(server)}`,
    }));
    this.options.handedOut?.(server, tokenData);
    this.log.info({ server: server.name }, 'tokens refreshed');
    sendJson(ctx.res, 200, { success: true, package: server.name, token_data: tokenData, message: REFRESH_MESSAGE }, NO_STORE);
  }

  private outcome(server: ServerDefinition, outcome: LoginOutcome): void {
    this.options.events?.emit('login.outcome', { server: server.name, outcome });
  }

  /**
   * One call to the pending-state store. A store that fails or cannot be reached is a 503 that says what
   * to do, whatever the store threw: a shared store going away must not look like a bug of the gateway.
   */
  private async storeStep<T>(server: ServerDefinition, step: 'save' | 'take', work: () => Promise<T>, hint: string): Promise<T> {
    try {
      return await work();
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      const reason = errors.FMCP_ERR_STATE_STORE.is(err) ? message.slice(message.indexOf(': ') + 2) : message;
      this.log.warn({ server: server.name, step, error: reason }, 'the pending-state store failed');
      if (step === 'take') this.outcome(server, 'store_unavailable');
      throw errors.FMCP_ERR_STATE_STORE(`the login to "${server.name}" cannot ${step === 'save' ? 'start' : 'finish'} (${reason}); ${hint}`);
    }
  }

  private async logFailure<T>(server: ServerDefinition, step: string, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      this.log.warn({ server: server.name, step, error: (err as { code?: string }).code, status: (err as { statusCode?: number }).statusCode }, `${step} failed at the token endpoint`);
      throw err;
    }
  }

  /** The server named in the path, if it uses this flow; the seed's errors otherwise. */
  private pkceServer(name: string): { server: ServerDefinition; config: PkceAuthConfig } {
    const server = this.servers.get(name);
    if (!server) {
      throw errors.FMCP_ERR_UNKNOWN_SERVER(name, this.servers.list().map((s) => s.name).join(', ') || 'no packages');
    }
    if (server.auth !== STRATEGY_KEY) {
      throw errors.FMCP_ERR_BAD_REQUEST(
        `Package does not require OAuth authentication: "${name}" has no auth block with "type": "oauth2" and "flow": "pkce" in ${server.source}. Call /${name}/mcp without a token, or add such a block to mcpServers.${name}.auth`,
      );
    }
    return { server, config: this.strategy.configOf(server) };
  }
}

/** Answers that may carry tokens or provider text: never cached, never sniffed as HTML. */
function noStore(ctx: RequestContext): void {
  ctx.res.setHeader('cache-control', 'no-store');
  ctx.res.setHeader('x-content-type-options', 'nosniff');
}

function readRefreshToken(ctx: RequestContext): string | undefined {
  const text = ctx.body?.toString('utf8') ?? '';
  const type = String(ctx.req.headers['content-type'] ?? '');
  let value: unknown;
  if (type.includes('application/x-www-form-urlencoded')) {
    value = new URLSearchParams(text).get('refresh_token');
  } else if (text.trim() !== '') {
    try {
      value = (JSON.parse(text) as { refresh_token?: unknown } | null)?.refresh_token;
    } catch {
      throw errors.FMCP_ERR_BAD_REQUEST('The body of /auth/refresh is not valid JSON: send {"refresh_token": "<refresh_token>"}');
    }
  }
  return typeof value === 'string' && value !== '' ? value : undefined;
}
