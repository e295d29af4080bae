import { errors, sendJson, type Logger, type PendingStateStore, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { codeKey, type CodeClaims } from './authorization-server.js';
import type { ClientRegistration } from './client-registration.js';
import type { PkceAuthConfig } from './config.js';
import { NO_STORE, OAuthError } from './oauth-error.js';
import { challengeS256, VERIFIER_PATTERN } from './pkce.js';
import type { AccessClaims, PackageUrls } from './resource-server.js';
import { missingScopes, scopesOf, stepUpScope } from './step-up.js';
import { epochIn, type TokenSeal } from './token-seal.js';
import { readClientCredentials, requestToken } from './token-endpoint.js';

interface RefreshClaims {
  [claim: string]: unknown;
  cid: string;
  prt: string;
  res: string;
  scope?: string;
}

export interface TokenGrantOptions {
  readonly providerTimeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The token endpoint of each package's authorization server (RFC 6749 section 3.2): authorization_code
 * (with the PKCE verifier, RFC 7636) and refresh_token. Every token it answers is sealed: the client
 * never holds the provider's tokens.
 */
export class TokenGrant {
  constructor(
    private readonly urls: PackageUrls,
    private readonly seal: TokenSeal,
    private readonly clients: ClientRegistration,
    private readonly store: () => PendingStateStore,
    private readonly options: TokenGrantOptions,
    private readonly log: Logger,
  ) {}

  async token(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig): Promise<void> {
    const type = String(ctx.req.headers['content-type'] ?? '');
    if (!type.includes('application/x-www-form-urlencoded')) throw new OAuthError('invalid_request', 'send the token request as application/x-www-form-urlencoded');
    const form = new URLSearchParams(ctx.body?.toString('utf8') ?? '');
    const grantType = form.get('grant_type');
    if (!grantType) throw new OAuthError('invalid_request', 'the request has no grant_type');
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token') {
      throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
    }
    const clientId = clientIdOf(ctx, form);
    if (!clientId) throw new OAuthError('invalid_request', 'the request has no client_id');
    const client = await this.clients.find(server, clientId);
    if (!client) throw new OAuthError('invalid_client', `this client is not registered with "${server.name}" on this gateway`, 401);
    const resource = form.getAll('resource');
    if (resource.length > 1 || (resource.length === 1 && resource[0] !== this.urls.resource(server))) {
      throw new OAuthError('invalid_target', `this authorization server issues tokens only for the resource ${this.urls.resource(server)}`);
    }
    if (grantType === 'authorization_code') await this.exchangeCode(ctx, server, form, clientId);
    else await this.refresh(ctx, server, config, form, clientId);
  }

  private async exchangeCode(ctx: RequestContext, server: ServerDefinition, form: URLSearchParams, clientId: string): Promise<void> {
    const code = form.get('code');
    if (!code) throw new OAuthError('invalid_request', 'the request has no code');
    const verifier = form.get('code_verifier');
    if (!verifier) throw new OAuthError('invalid_request', 'PKCE is required: the request has no code_verifier');
    const opened = await this.seal.open<CodeClaims>('code', code, this.urls.issuer(server));
    if (!opened.ok) throw new OAuthError('invalid_grant', opened.reason === 'expired' ? 'the authorization code has expired' : 'the authorization code is not valid for this package');
    const claims = opened.claims;
    if (claims.cid !== clientId) throw new OAuthError('invalid_grant', 'the authorization code was issued to another client');
    // one use, whatever follows: a code that met a wrong verifier is gone too
    let unused: unknown;
    try {
      unused = await this.store().take(codeKey(claims.jti));
    } catch (err) {
      this.log.warn({ server: server.name, error: (err as Error).message }, 'the pending-state store failed');
      throw new OAuthError('temporarily_unavailable', 'the gateway cannot check the authorization code now: try again in a moment', 503);
    }
    if (unused === undefined) throw new OAuthError('invalid_grant', 'the authorization code was already used');
    if (form.get('redirect_uri') !== claims.ruri) throw new OAuthError('invalid_grant', 'redirect_uri does not match the one of the authorization request');
    if (!VERIFIER_PATTERN.test(verifier) || challengeS256(verifier) !== claims.cc) throw new OAuthError('invalid_grant', 'the code_verifier does not match the code_challenge');
    this.log.info({ server: server.name }, 'authorization code exchanged');
    await this.answer(ctx, server, clientId, claims.ptk, claims.pexp, claims.prt, claims.scope);
  }

  private async refresh(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig, form: URLSearchParams, clientId: string): Promise<void> {
    const refreshToken = form.get('refresh_token');
    if (!refreshToken) throw new OAuthError('invalid_request', 'the request has no refresh_token');
    const opened = await this.seal.open<RefreshClaims>('refresh', refreshToken, this.urls.issuer(server));
    if (!opened.ok) throw new OAuthError('invalid_grant', 'the refresh token is not valid for this package');
    const claims = opened.claims;
    if (claims.cid !== clientId) throw new OAuthError('invalid_grant', 'the refresh token was issued to another client');
    // a refresh never widens a grant: one that lacks a scope the package now requires must sign in again (step-up)
    const missing = missingScopes(config, scopesOf(claims.scope));
    if (missing.length > 0) throw new OAuthError('invalid_grant', `this sign-in was not granted ${missing.join(', ')}, which ${server.name} now requires: authorize again with the scope ${stepUpScope(config)}`);
    let tokenData: Record<string, unknown>;
    try {
      tokenData = await requestToken({
        server,
        config,
        client: readClientCredentials(server, config, this.options.env),
        grant: { grant_type: 'refresh_token', refresh_token: claims.prt },
        timeoutMs: this.options.providerTimeoutMs,
        retryHint: 'Sign in again from your MCP client',
      });
    } catch (err) {
      if (errors.FMCP_ERR_BAD_REQUEST.is(err)) throw new OAuthError('invalid_grant', 'the provider refused to refresh the sign-in: sign in again');
      this.log.warn({ server: server.name, error: (err as { code?: string }).code }, 'refresh failed at the provider');
      throw new OAuthError('temporarily_unavailable', 'the provider cannot be reached to refresh the sign-in: try again later', 503);
    }
    const expiresIn = typeof tokenData.expires_in === 'number' && tokenData.expires_in > 0 ? tokenData.expires_in : 3600;
    const providerRefresh = typeof tokenData.refresh_token === 'string' ? tokenData.refresh_token : claims.prt;
    this.log.info({ server: server.name }, 'tokens refreshed at the provider');
    await this.answer(ctx, server, clientId, String(tokenData.access_token), epochIn(expiresIn), providerRefresh, typeof tokenData.scope === 'string' ? tokenData.scope : claims.scope);
  }

  /** RFC 6749 section 5.1, with the provider's tokens sealed; the access token lives no longer than the provider's. */
  private async answer(ctx: RequestContext, server: ServerDefinition, clientId: string, providerToken: string, providerExp: number, providerRefresh: string | undefined, scope: string | undefined): Promise<void> {
    const access: AccessClaims & { aud: string; exp: number } = { aud: this.urls.resource(server), exp: providerExp, ptk: providerToken, cid: clientId, ...(scope ? { scope } : {}) };
    const body: Record<string, unknown> = {
      access_token: await this.seal.seal('access', access),
      token_type: 'Bearer',
      expires_in: Math.max(0, providerExp - epochIn(0)),
    };
    if (providerRefresh) {
      const refresh: RefreshClaims & { aud: string } = { aud: this.urls.issuer(server), cid: clientId, prt: providerRefresh, res: this.urls.resource(server), ...(scope ? { scope } : {}) };
      body.refresh_token = await this.seal.seal('refresh', refresh);
    }
    if (scope) body.scope = scope;
    sendJson(ctx.res, 200, body, NO_STORE);
  }
}

/** client_id from the form, or from HTTP Basic (a client that sends an empty secret). */
function clientIdOf(ctx: RequestContext, form: URLSearchParams): string | null {
  const header = ctx.req.headers.authorization;
  if (header?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    try {
      return decodeURIComponent((colon === -1 ? decoded : decoded.slice(0, colon)).replace(/\+/g, ' '));
    } catch {
      return null;
    }
  }
  return form.get('client_id');
}
