import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { errors, type FluidError, type Logger, type ServerDefinition } from '../../../index.js';
import type { ClientCredentialsConfig, ClientSecretPair } from './config.js';

/** A token the gateway holds for one server, and when to replace it. */
export interface HeldToken {
  readonly value: string;
  /** 'cc:' and a short hash of the token: the identity key, never the token */
  readonly key: string;
  /** from then on, the next caller fetches a new token */
  readonly refreshAt: number;
  /** after then, the token is not handed out even when the provider is down */
  readonly expiresAt: number;
}

export interface TokenSourceSettings {
  /** bound on each token request, ms */
  readonly timeoutMs: number;
  /** a token is replaced this long before it expires (at most half its lifetime), ms */
  readonly refreshMarginMs: number;
  /** how long a token that came without `expires_in` is used, ms */
  readonly defaultLifetimeMs: number;
}

const MAX_ANSWER_BYTES = 64 * 1024;

export const identityKeyOf = (token: string): string => `cc:${createHash('sha256').update(token).digest('hex').slice(0, 16)}`;

/** RFC 6749 section 2.3.1: id and secret are form-encoded before they are joined for Basic. */
const formEncode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2);

/** Provider text shown to users: printable and bounded. */
function providerText(value: unknown, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const text = String(value ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The client credentials grant (RFC 6749 section 4.4) for one server: one token at a time, fetched on
 * first use, reused until shortly before it expires, then replaced. Concurrent callers share one request.
 */
export class TokenSource {
  private held: HeldToken | undefined;
  private fetching: Promise<HeldToken> | undefined;
  /** token requests sent, for /health */
  requests = 0;

  constructor(
    private readonly server: ServerDefinition,
    private readonly config: ClientCredentialsConfig,
    private readonly client: ClientSecretPair,
    private readonly settings: TokenSourceSettings,
    private readonly dispatcher: () => Dispatcher,
    private readonly log: Logger,
  ) {}

  get current(): HeldToken | undefined {
    return this.held;
  }

  /** The token to use now; fetches one when there is none or it is due for replacement. */
  async token(): Promise<HeldToken> {
    const held = this.held;
    if (held && Date.now() < held.refreshAt) return held;
    try {
      this.fetching ??= this.fetch().finally(() => (this.fetching = undefined));
      return await this.fetching;
    } catch (err) {
      // a provider hiccup while the old token is still valid costs nothing: keep using it
      if (held && Date.now() < held.expiresAt) {
        this.log.warn({ server: this.server.name, error: (err as Error).message }, 'token refresh failed; using the current token until it expires');
        return held;
      }
      throw err;
    }
  }

  private async fetch(): Promise<HeldToken> {
    const sentAt = Date.now();
    this.requests++;
    const answer = await this.post();
    const value = answer.access_token;
    const lifetimeMs = Number(answer.expires_in) > 0 ? Number(answer.expires_in) * 1000 : this.settings.defaultLifetimeMs;
    const held: HeldToken = {
      value: value as string,
      key: identityKeyOf(value as string),
      refreshAt: sentAt + Math.max(lifetimeMs - this.settings.refreshMarginMs, lifetimeMs / 2),
      expiresAt: sentAt + lifetimeMs,
    };
    if (typeof answer.token_type === 'string' && answer.token_type.toLowerCase() !== 'bearer') {
      this.log.warn({ server: this.server.name, tokenType: providerText(answer.token_type, 40) }, 'the provider issued a token that is not a Bearer token; the server gets it as it is');
    }
    this.log.info({ server: this.server.name, identity: held.key, expiresInS: Math.round(lifetimeMs / 1000) }, 'client credentials token obtained');
    this.held = held;
    return held;
  }

  /** POSTs the form-encoded grant and returns the provider's JSON; every failure is a 502 saying so. */
  private async post(): Promise<Record<string, unknown>> {
    const { config, client, settings } = this;
    const form = new URLSearchParams({ grant_type: 'client_credentials', ...config.extraParams });
    if (config.scopes.length > 0) form.set('scope', config.scopes.join(' '));
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (config.method === 'client_secret_basic') {
      headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString('base64')}`;
    } else {
      form.set('client_id', client.clientId);
      form.set('client_secret', client.clientSecret);
    }

    let status: number;
    let text: string;
    try {
      const res = await request(config.tokenUrl, {
        dispatcher: this.dispatcher(),
        method: 'POST',
        headers,
        body: form.toString(),
        headersTimeout: settings.timeoutMs,
        bodyTimeout: settings.timeoutMs,
        signal: AbortSignal.timeout(settings.timeoutMs),
      });
      status = res.statusCode;
      text = await readBounded(res.body);
    } catch (err) {
      throw this.failure(`the request failed (${describeTransportError(err, settings.timeoutMs)}). Check auth.token_url and that the provider is up`);
    }

    let body: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    if (status >= 200 && status < 300) {
      if (typeof body?.access_token === 'string' && body.access_token !== '') return body;
      throw this.failure(`it answered HTTP ${status} without an access_token. Check auth.token_url`);
    }
    const said = typeof body?.error === 'string'
      ? `${providerText(body.error, 80)}${body.error_description ? `: ${providerText(body.error_description)}` : ''}`
      : `HTTP ${status}`;
    if (said.startsWith('invalid_client') || said.startsWith('unauthorized_client')) {
      throw this.failure(`it refused the gateway's client (${said}). Check ${config.clientIdEnv}, ${config.clientSecretEnv} and auth.token_endpoint_auth_method`);
    }
    if (said.startsWith('invalid_scope')) throw this.failure(`it refused the scopes (${said}). Check auth.scopes`);
    throw this.failure(`it refused the token request (${said})${status >= 500 ? '. Try again later' : ''}`);
  }

  private failure(what: string): FluidError {
    const message = `the gateway could not get an access token from the OAuth provider at ${this.config.tokenUrl}: ${what}`;
    this.log.warn({ server: this.server.name }, message);
    return errors.FMCP_ERR_UPSTREAM(this.server.name, message);
  }
}

function describeTransportError(err: unknown, timeoutMs: number): string {
  const e = err as NodeJS.ErrnoException;
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return `no answer within ${timeoutMs} ms`;
  }
  if (e.code === 'ECONNREFUSED') return 'connection refused';
  if (e.code === 'ENOTFOUND') return 'host not found';
  return e.code ?? e.message;
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy();
      throw Object.assign(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`), { code: 'answer too large' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
