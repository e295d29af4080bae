import { request } from './undici.js';
import { errors } from '../../core/index.js';
import { scopesOf } from './step-up.js';

export interface TokenVerdict {
  readonly accepted: boolean;
  /** who the provider says the token belongs to, when it says so */
  readonly subject?: string;
  /** the scopes the provider says the token was granted (introspection's `scope`), when it says so */
  readonly scopes?: readonly string[];
}

/**
 * Where a provider confirms tokens: an endpoint that answers a GET with the Bearer token 2xx when it is
 * good and 4xx when not (`validate_url`, userinfo, tokeninfo), or an RFC 7662 introspection endpoint
 * that the gateway calls with its own client credentials.
 */
export type TokenEndpoint =
  | { readonly kind: 'bearer'; readonly url: string; readonly name: string }
  | {
      readonly kind: 'introspection';
      readonly url: string;
      readonly name: string;
      readonly clientId: string;
      readonly clientSecret: string;
      readonly method: 'client_secret_basic' | 'client_secret_post';
    };

export interface TokenCheckOptions {
  readonly cacheMs: number;
  readonly maxEntries: number;
  readonly timeoutMs: number;
}

/**
 * Checks tokens at a provider endpoint once per token: verdicts are cached by token hash for a short
 * time (so a revoked token stops working within `cacheMs`), bounded in number, and concurrent checks of
 * one token share one request. Failures to reach the endpoint are not cached: they are a 503.
 */
export class TokenCheck {
  private readonly verdicts = new Map<string, { verdict: TokenVerdict; expires: number }>();
  private readonly inFlight = new Map<string, Promise<TokenVerdict>>();

  constructor(private readonly options: TokenCheckOptions) {}

  async check(serverName: string, endpoint: TokenEndpoint, token: string, hash: string): Promise<TokenVerdict> {
    const key = `${endpoint.url}\u0000${hash}`;
    const cached = this.verdicts.get(key);
    if (cached && cached.expires > Date.now()) return cached.verdict;
    if (cached) this.verdicts.delete(key);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.ask(serverName, endpoint, token).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const verdict = await pending;
    this.remember(key, verdict);
    return verdict;
  }

  clear(): void {
    this.verdicts.clear();
  }

  private remember(key: string, verdict: TokenVerdict): void {
    this.verdicts.delete(key);
    this.verdicts.set(key, { verdict, expires: Date.now() + this.options.cacheMs });
    while (this.verdicts.size > this.options.maxEntries) this.verdicts.delete(this.verdicts.keys().next().value as string);
  }

  private async ask(serverName: string, endpoint: TokenEndpoint, token: string): Promise<TokenVerdict> {
    const { timeoutMs } = this.options;
    const signal = AbortSignal.timeout(timeoutMs);
    const where = `${endpoint.name} ${endpoint.url}`;
    let status: number;
    let text = '';
    try {
      const answer = await request(endpoint.url, { ...requestFor(endpoint, token), headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal });
      status = answer.statusCode;
      if (status >= 200 && status < 300 && String(answer.headers['content-type'] ?? '').includes('json')) {
        text = await answer.body.text();
      } else {
        await answer.body.dump();
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = signal.aborted || (e.code?.startsWith('UND_ERR_') && e.code.endsWith('TIMEOUT'))
        ? `no answer within ${timeoutMs} ms`
        : e.code === 'ECONNREFUSED' ? 'connection refused' : e.code === 'ENOTFOUND' ? 'host not found' : (e.code ?? e.message);
      throw errors.FMCP_ERR_AUTH_UNAVAILABLE(serverName, `the provider cannot be reached at ${where} (${why}), so the token was neither accepted nor refused. Try again shortly; if it lasts, check that the provider is up`);
    }
    if (endpoint.kind === 'introspection') {
      if (status === 401 || status === 403) {
        throw errors.FMCP_ERR_AUTH_UNAVAILABLE(serverName, `${where} refused the gateway's client credentials (HTTP ${status}): check the client id and secret variables and auth.token_endpoint_auth_method`);
      }
      const body = parseObject(text);
      if (status >= 200 && status < 300 && body && typeof body.active === 'boolean') {
        if (body.active !== true) return { accepted: false };
        return { accepted: true, subject: subjectOf(body), ...(typeof body.scope === 'string' ? { scopes: scopesOf(body.scope) } : {}) };
      }
    } else {
      if (status >= 200 && status < 300) return { accepted: true, subject: subjectOf(parseObject(text)) };
      if (status >= 400 && status < 500) return { accepted: false };
    }
    throw errors.FMCP_ERR_AUTH_UNAVAILABLE(serverName, `${where} answered HTTP ${status} while checking a token${endpoint.kind === 'introspection' ? ' without an "active" verdict' : ''}. Try again later`);
  }
}

function requestFor(endpoint: TokenEndpoint, token: string): { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string } {
  if (endpoint.kind === 'bearer') return { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } };
  const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (endpoint.method === 'client_secret_basic') {
    // RFC 6749 section 2.3.1: each part form-encoded before base64
    const part = (v: string): string => encodeURIComponent(v).replace(/%20/g, '+');
    headers.authorization = `Basic ${Buffer.from(`${part(endpoint.clientId)}:${part(endpoint.clientSecret)}`).toString('base64')}`;
  } else {
    form.set('client_id', endpoint.clientId);
    form.set('client_secret', endpoint.clientSecret);
  }
  return { method: 'POST', headers, body: form.toString() };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A short display name from a userinfo, tokeninfo or introspection answer. */
function subjectOf(body: Record<string, unknown> | undefined): string | undefined {
  if (!body) return undefined;
  for (const field of ['preferred_username', 'username', 'login', 'sub', 'email']) {
    const value = body[field];
    if (typeof value === 'string' && value !== '') return value.replace(/[^\w.@+-]/g, '').slice(0, 64) || undefined;
    if (typeof value === 'number') return String(value);
  }
  return undefined;
}
