import { request } from './undici.js';
import { errors } from '../../core/index.js';

export interface TokenVerdict {
  readonly accepted: boolean;
  /** who the provider says the token belongs to, when it says so */
  readonly subject?: string;
}

export interface TokenCheckOptions {
  readonly cacheMs: number;
  readonly maxEntries: number;
  readonly timeoutMs: number;
}

/**
 * Checks tokens against a provider endpoint (userinfo, tokeninfo) with a GET and the Bearer, once per
 * token: verdicts are cached by token hash for a short time, and concurrent checks of one token share
 * one request. Failures to reach the endpoint are not cached.
 */
export class TokenCheck {
  private readonly verdicts = new Map<string, { verdict: TokenVerdict; expires: number }>();
  private readonly inFlight = new Map<string, Promise<TokenVerdict>>();

  constructor(private readonly options: TokenCheckOptions) {}

  async check(serverName: string, url: string, token: string, hash: string): Promise<TokenVerdict> {
    const key = `${url}\u0000${hash}`;
    const cached = this.verdicts.get(key);
    if (cached && cached.expires > Date.now()) return cached.verdict;
    if (cached) this.verdicts.delete(key);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.ask(serverName, url, token).finally(() => this.inFlight.delete(key));
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

  private async ask(serverName: string, url: string, token: string): Promise<TokenVerdict> {
    const { timeoutMs } = this.options;
    const signal = AbortSignal.timeout(timeoutMs);
    let status: number;
    let text = '';
    try {
      const answer = await request(url, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal,
      });
      status = answer.statusCode;
      if (status >= 200 && status < 300 && String(answer.headers['content-type'] ?? '').includes('json')) {
        text = await answer.body.text();
      } else {
        await answer.body.dump();
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (signal.aborted || (e.code?.startsWith('UND_ERR_') && e.code.endsWith('TIMEOUT'))) {
        throw errors.FMCP_ERR_TIMEOUT(`Checking the token of "${serverName}" at auth.validate_url ${url}`, timeoutMs);
      }
      throw errors.FMCP_ERR_UPSTREAM(serverName, `cannot check the token at auth.validate_url ${url} (${e.code ?? e.message}). Check the URL and that the provider is up`);
    }
    if (status >= 200 && status < 300) return { accepted: true, subject: subjectOf(text) };
    if (status >= 400 && status < 500) return { accepted: false };
    throw errors.FMCP_ERR_UPSTREAM(serverName, `auth.validate_url ${url} answered HTTP ${status} while checking a token. Try again later`);
  }
}

/** A short display name from a userinfo or tokeninfo answer. */
function subjectOf(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    for (const field of ['preferred_username', 'login', 'sub', 'email']) {
      const value = body[field];
      if (typeof value === 'string' && value !== '') return value.replace(/[^\w.@+-]/g, '').slice(0, 64) || undefined;
      if (typeof value === 'number') return String(value);
    }
  } catch {
    // not JSON: the token is still accepted
  }
  return undefined;
}
