import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  sendJson,
  type EventBus,
  type LoginOutcome,
  type Logger,
  type PendingStateStore,
  type RequestContext,
  type ServerDefinition,
} from '../../core/index.js';
import type { ClientRegistration, RegisteredClient } from './client-registration.js';
import { hostOf } from './client-registration.js';
import type { PkceAuthConfig } from './config.js';
import { sendConsentPage, sendErrorPage } from './consent-page.js';
import type { LoginFlow, PendingLogin } from './login-flow.js';
import { OAuthError } from './oauth-error.js';
import type { PackageUrls } from './resource-server.js';
import { epochIn, type TokenSeal } from './token-seal.js';
import { providerText, readClientCredentials, requestToken } from './token-endpoint.js';

/** An MCP client's authorization request, once checked: carried by the consent form, then the pending login. */
export interface AuthorizationRequest {
  cid: string;
  ruri: string;
  cc: string;
  state?: string;
  resource: string;
  [field: string]: unknown;
}

/** What a sealed authorization code holds: the request it answers and the provider's tokens. */
export interface CodeClaims extends AuthorizationRequest {
  jti: string;
  ptk: string;
  prt?: string;
  /** when the provider's access token expires, epoch seconds */
  pexp: number;
  scope?: string;
}

export interface AuthorizationServerOptions {
  readonly providerTimeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
  /** how long an authorization code may wait for its token request, s */
  readonly codeTtlS: number;
  /** how long the consent page may stay open, s */
  readonly consentTtlS: number;
  /** where login.outcome goes */
  readonly events?: EventBus;
}

const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const MAX_STATE = 1024;

/**
 * The authorization endpoint of each oauth2/pkce package (OAuth 2.1 with PKCE, RFC 8707 resources,
 * RFC 9207 `iss`): checks the client's request, asks the person for consent, runs the package's own
 * PKCE login against the provider through /{name}/auth/callback, and answers the client with a one-use
 * code sealed around the provider's tokens.
 */
export class AuthorizationServer {
  constructor(
    private readonly urls: PackageUrls,
    private readonly seal: TokenSeal,
    private readonly clients: ClientRegistration,
    private readonly loginFlow: LoginFlow,
    private readonly store: () => PendingStateStore,
    private readonly options: AuthorizationServerOptions,
    private readonly log: Logger,
  ) {}

  /** RFC 8414 metadata of the package's authorization server. */
  metadata(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig): void {
    sendJson(ctx.res, 200, {
      issuer: this.urls.issuer(server),
      authorization_endpoint: this.urls.authorizationEndpoint(server),
      token_endpoint: this.urls.tokenEndpoint(server),
      registration_endpoint: this.urls.registrationEndpoint(server),
      ...(config.scopes.length > 0 ? { scopes_supported: config.scopes } : {}),
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['none'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: this.clients.documents !== undefined,
    }, { 'cache-control': 'public, max-age=300' });
  }

  /** GET /{name}/authorize: errors before the redirect URI is trusted are pages, after it redirects. */
  async authorize(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig): Promise<void> {
    const q = ctx.query;
    const repeated = repeatedParameter(q);
    // which client_id or redirect_uri counts is unknown: the redirect cannot be trusted, so a page
    if (repeated === 'client_id' || repeated === 'redirect_uri') {
      return this.refusePage(ctx, server, 400, 'invalid_request', `the request includes ${repeated} more than once: send each parameter once (RFC 6749 section 3.1)`);
    }
    const clientId = q.get('client_id');
    if (!clientId) return this.refusePage(ctx, server, 400, 'invalid_request', 'the request has no client_id');
    let client: RegisteredClient | undefined;
    try {
      client = await this.clients.find(server, clientId);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return this.refusePage(ctx, server, 400, err.error, err.description);
    }
    if (!client) {
      return this.refusePage(ctx, server, 400, 'invalid_client', `this client is not registered with "${server.name}" on this gateway (register it at ${this.urls.registrationEndpoint(server)})`);
    }
    const asked = q.get('redirect_uri');
    const redirectUri = asked ?? (client.redirectUris.length === 1 ? client.redirectUris[0]! : undefined);
    if (redirectUri === undefined || !client.redirectUris.includes(redirectUri)) {
      return this.refusePage(ctx, server, 400, 'invalid_request', asked === null
        ? 'the request has no redirect_uri and the client registered several'
        : 'the redirect_uri is not one this client registered (it must match exactly)');
    }
    const state = q.get('state') ?? undefined;
    try {
      if (repeated !== undefined) throw new OAuthError('invalid_request', `the request includes ${repeated} more than once: send each parameter once (RFC 6749 section 3.1)`);
      if (state !== undefined && state.length > MAX_STATE) throw new OAuthError('invalid_request', `state is longer than ${MAX_STATE} characters`);
      const request = this.checkRequest(ctx.query, server, client, redirectUri, state);
      const csrf = randomBytes(32).toString('base64url');
      const sealed = await this.seal.seal('consent', { aud: this.urls.issuer(server), exp: epochIn(this.options.consentTtlS), csrf, ...request });
      // one answer per form: Deny cannot be followed by Allow, nor one consent start several logins
      await this.store().put(consentKey(csrf), { package: server.name }, this.options.consentTtlS * 1000);
      sendConsentPage(ctx.res, {
        packageName: server.name,
        clientName: client.clientName ?? 'An unnamed MCP client',
        clientId: client.clientId,
        redirectHost: hostOf(redirectUri),
        scopes: config.scopes,
        action: this.urls.authorizationEndpoint(server),
        request: sealed,
        csrf,
      }, { 'set-cookie': this.csrfCookie(server, csrf, csrf, this.options.consentTtlS) });
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      this.log.info({ server: server.name, error: err.error }, 'authorization request refused');
      this.redirectToClient(ctx, server, redirectUri, { error: err.error, error_description: err.description, state });
    }
  }

  /** POST /{name}/authorize: the consent form's answer. */
  async decide(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig): Promise<void> {
    const form = new URLSearchParams(ctx.body?.toString('utf8') ?? '');
    const opened = await this.seal.open<AuthorizationRequest & { csrf: string }>('consent', form.get('request') ?? '', this.urls.issuer(server));
    if (!opened.ok) {
      return this.refusePage(ctx, server, 400, 'invalid_request', opened.reason === 'expired'
        ? 'the consent page was open too long: start the sign-in again from your MCP client'
        : 'the consent form is not one this gateway made');
    }
    const { csrf, aud: _aud, exp: _exp, ...request } = opened.claims;
    const cookie = readCookie(ctx, cookieName(csrf));
    if (!sameText(form.get('csrf') ?? '', csrf) || cookie === undefined || !sameText(cookie, csrf)) {
      return this.refusePage(ctx, server, 403, 'access_denied', 'the consent form was not sent from the page this gateway showed in this browser');
    }
    ctx.res.setHeader('set-cookie', this.csrfCookie(server, csrf, '', 0));
    if ((await this.store().take(consentKey(csrf))) === undefined) {
      return this.refusePage(ctx, server, 400, 'invalid_request', 'this consent form was already answered: start the sign-in again from your MCP client');
    }
    const decision = form.get('decision');
    if (decision !== 'allow') {
      this.log.info({ server: server.name }, 'consent denied');
      return this.redirectToClient(ctx, server, request.ruri, { error: 'access_denied', error_description: 'the user denied access', state: request.state });
    }
    this.log.info({ server: server.name }, 'consent given: redirecting to the provider');
    const location = await this.loginFlow.startProviderLogin(server, config, request);
    ctx.res.writeHead(302, { location, 'content-length': 0, 'cache-control': 'no-store' });
    ctx.res.end();
  }

  /** The provider's callback of a login this server started: a sealed one-use code to the client. */
  async continueFromProvider(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig, pending: PendingLogin): Promise<void> {
    const request = pending.authorization as AuthorizationRequest;
    const outcome = (value: LoginOutcome): void => this.options.events?.emit('login.outcome', { server: server.name, outcome: value });
    const back = (error: string, description: string): void => {
      outcome(error === 'temporarily_unavailable' ? 'store_unavailable' : 'provider_error');
      this.redirectToClient(ctx, server, request.ruri, { error, error_description: description, state: request.state });
    };
    const providerError = ctx.query.get('error');
    if (providerError !== null) {
      this.log.info({ server: server.name, error: providerText(providerError, 80) }, 'sign-in failed at the provider');
      return back(providerError === 'access_denied' ? 'access_denied' : 'server_error', `the provider answered ${providerText(providerError, 80)}`);
    }
    const providerCode = ctx.query.get('code');
    if (!providerCode) return back('server_error', 'the provider sent no code');
    let tokenData: Record<string, unknown>;
    try {
      tokenData = await requestToken({
        server,
        config,
        client: readClientCredentials(server, config, this.options.env),
        grant: { grant_type: 'authorization_code', code: providerCode, redirect_uri: pending.redirect_uri, code_verifier: pending.verifier },
        timeoutMs: this.options.providerTimeoutMs,
        retryHint: 'Start the sign-in again from your MCP client',
      });
    } catch (err) {
      this.log.warn({ server: server.name, error: (err as { code?: string }).code }, 'code exchange failed at the provider');
      return back('server_error', 'the provider did not exchange its code');
    }
    const jti = randomBytes(16).toString('base64url');
    const expiresIn = typeof tokenData.expires_in === 'number' && tokenData.expires_in > 0 ? tokenData.expires_in : 3600;
    const claims: CodeClaims = {
      ...request,
      jti,
      ptk: String(tokenData.access_token),
      pexp: epochIn(expiresIn),
      ...(typeof tokenData.refresh_token === 'string' ? { prt: tokenData.refresh_token } : {}),
      ...(typeof tokenData.scope === 'string' ? { scope: tokenData.scope } : config.scopes.length > 0 ? { scope: config.scopes.join(' ') } : {}),
    };
    const code = await this.seal.seal('code', { aud: this.urls.issuer(server), exp: epochIn(this.options.codeTtlS), ...claims });
    try {
      await this.store().put(codeKey(jti), { package: server.name }, this.options.codeTtlS * 1000);
    } catch (err) {
      this.log.warn({ server: server.name, error: (err as Error).message }, 'the pending-state store failed');
      return back('temporarily_unavailable', 'the gateway cannot keep the authorization code now: try again in a moment');
    }
    outcome('success');
    this.log.info({ server: server.name }, 'sign-in completed: code sent to the client');
    this.redirectToClient(ctx, server, request.ruri, { code, state: request.state });
  }

  private checkRequest(q: URLSearchParams, server: ServerDefinition, client: RegisteredClient, redirectUri: string, state: string | undefined): AuthorizationRequest {
    const responseType = q.get('response_type');
    if (responseType !== 'code') throw new OAuthError('unsupported_response_type', 'response_type must be "code"');
    const challenge = q.get('code_challenge');
    if (!challenge) throw new OAuthError('invalid_request', 'PKCE is required: send code_challenge and code_challenge_method=S256');
    if (q.get('code_challenge_method') !== 'S256') throw new OAuthError('invalid_request', 'code_challenge_method must be S256');
    if (!CHALLENGE.test(challenge)) throw new OAuthError('invalid_request', 'code_challenge must be 43 base64url characters (the S256 of the verifier)');
    const resources = q.getAll('resource');
    const expected = this.urls.resource(server);
    if (resources.length > 1 || (resources.length === 1 && resources[0] !== expected)) {
      throw new OAuthError('invalid_target', `this authorization server issues tokens only for the resource ${expected}`);
    }
    return { cid: client.clientId, ruri: redirectUri, cc: challenge, resource: expected, ...(state !== undefined ? { state } : {}) };
  }

  /** RFC 6749 4.1.2 and RFC 9207: the answer to the client, on its (already matched) redirect URI. */
  private redirectToClient(ctx: RequestContext, server: ServerDefinition, redirectUri: string, params: Record<string, string | undefined>): void {
    const target = new URL(redirectUri);
    for (const [name, value] of Object.entries(params)) if (value !== undefined) target.searchParams.set(name, value);
    target.searchParams.set('iss', this.urls.issuer(server));
    ctx.res.writeHead(302, { location: target.toString(), 'content-length': 0, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    ctx.res.end();
  }

  private refusePage(ctx: RequestContext, server: ServerDefinition, status: number, error: string, description: string): void {
    this.log.info({ server: server.name, error }, 'authorization request refused');
    sendErrorPage(ctx.res, status, error, description);
  }

  /** The consent page's CSRF cookie (double submit): named after the form it belongs to, so two open pages do not clash. */
  private csrfCookie(server: ServerDefinition, csrf: string, value: string, maxAge: number): string {
    const secure = this.urls.issuer(server).startsWith('https:') ? '; Secure' : '';
    return `${cookieName(csrf)}=${value}; Path=/${encodeURIComponent(server.name)}/authorize; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure}`;
  }
}

/**
 * The first parameter sent more than once (RFC 6749 section 3.1: parameters must not be included more
 * than once), except `resource`, which RFC 8707 lets repeat (checked on its own: one resource here).
 */
export function repeatedParameter(q: URLSearchParams): string | undefined {
  const seen = new Set<string>();
  for (const name of q.keys()) {
    if (name === 'resource') continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** The store key of an unused code: taken once by the token endpoint. */
export const codeKey = (jti: string): string => `code.${jti}`;
/** The pending-state key that makes one consent form answerable once. */
const consentKey = (csrf: string): string => `consent.${csrf}`;

const cookieName = (csrf: string): string => `fmcp_consent_${csrf.slice(0, 8)}`;

function readCookie(ctx: RequestContext, name: string): string | undefined {
  for (const part of String(ctx.req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
