import type { Redis } from 'ioredis';
import { errors, type JsonObject, type Logger, type PendingStateStore } from '../../core/index.js';

export interface RedisStoreSettings {
  /** redis://[user:password@]host:port/db or rediss://… */
  readonly url: string;
  /** prefix of every key this store writes */
  readonly prefix: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
}

/** Longest key looked up: a state is ~43 characters; anything far longer was not issued by the gateway. */
const MAX_KEY = 512;

/** The URL without its password, for errors and logs. */
export function displayUrl(url: string): string {
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  return u.toString();
}

/**
 * Pending state in Redis, shared by every replica. Each entry is a string key with its expiry (`SET … PX`),
 * taken with `GETDEL`, so a state is used once even when two replicas race for it. A sorted set of keys by
 * expiry makes `size()` one cheap transaction instead of a scan. Values are never logged.
 */
export class RedisStateStore implements PendingStateStore {
  /** values go to Redis (and its snapshots on disk), outside this process */
  readonly shared = true;
  private client: Redis | undefined;
  private lastError: string | undefined;
  private connected = false;
  private outage = false;
  private readonly where: string;
  private readonly indexKey: string;

  constructor(private readonly settings: RedisStoreSettings) {
    this.where = displayUrl(settings.url);
    this.indexKey = `${settings.prefix}pending-index`;
  }

  /** Connects and checks that the server can GETDEL (Redis 6.2 or later); throws a 503 error that says what to do. */
  async connect(): Promise<void> {
    const { Redis } = await import('ioredis');
    const { connectTimeoutMs, commandTimeoutMs, log } = this.settings;
    const client = new Redis(this.settings.url, {
      lazyConnect: true,
      connectTimeout: connectTimeoutMs,
      commandTimeout: commandTimeoutMs,
      // a command fails at once while the connection is down, instead of waiting in a queue
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    this.client = client;
    client.on('error', (err: Error) => {
      this.lastError = err.message;
      if (this.connected && !this.outage) {
        this.outage = true;
        log.error({ store: this.where, error: err.message }, 'lost the connection to Redis: logins fail with 503 until it is back');
      }
    });
    client.on('ready', () => {
      if (this.outage) log.info({ store: this.where }, 'reconnected to Redis');
      this.outage = false;
      this.lastError = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs + 500);
        }),
      ]);
      await client.getdel(`${this.settings.prefix}pending:connection-check`);
    } catch (err) {
      client.disconnect();
      this.client = undefined;
      const message = (err as Error).message;
      const reason = /unknown command/i.test(message)
        ? 'it does not know GETDEL: the pending-state store needs Redis 6.2 or later'
        : `${this.lastError ?? message}: start Redis there or correct --state-store ("stateStore" in a config file)`;
      throw errors.FMCP_ERR_STATE_STORE(`cannot use Redis at ${this.where}: ${reason}`);
    } finally {
      clearTimeout(timer);
    }
    this.connected = true;
    log.info({ store: this.where }, 'pending logins are kept in Redis');
  }

  async put(key: string, value: JsonObject, ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const now = Date.now();
    const k = this.keyOf(key);
    const results = await this.run('store a pending login', (c) =>
      c.multi().set(k, JSON.stringify(value), 'PX', ttl).zadd(this.indexKey, now + ttl, k).zremrangebyscore(this.indexKey, '-inf', now).exec());
    this.check(results);
  }

  async take(key: string): Promise<JsonObject | undefined> {
    if (key.length > MAX_KEY) return undefined;
    const k = this.keyOf(key);
    const results = this.check(await this.run('take a pending login', (c) => c.multi().getdel(k).zrem(this.indexKey, k).exec()));
    const raw = results[0]?.[1];
    if (typeof raw !== 'string') return undefined;
    try {
      const value = JSON.parse(raw) as unknown;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as JsonObject;
    } catch {
      // not written by this store: treated as absent below
    }
    this.settings.log.warn({ store: this.where }, 'a pending-state entry in Redis is not a JSON object: ignored');
    return undefined;
  }

  async size(): Promise<number> {
    const results = this.check(await this.run('count pending logins', (c) => c.multi().zremrangebyscore(this.indexKey, '-inf', Date.now()).zcard(this.indexKey).exec()));
    return Number(results[1]?.[1] ?? 0);
  }

  /** Ends the connection: QUIT within a bound, then a hard disconnect. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    if (!client) return;
    if (client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.quit().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
    }
    client.disconnect();
  }

  /** Runs `fn` on the connection; failures become FMCP_ERR_STATE_STORE errors that say `what` could not be done. */
  command<T>(what: string, fn: (client: Redis) => Promise<T>): Promise<T> {
    return this.run(what, fn);
  }

  private keyOf(key: string): string {
    return `${this.settings.prefix}pending:${key}`;
  }

  private async run<T>(what: string, fn: (client: Redis) => Promise<T>): Promise<T> {
    const client = this.client;
    if (!client) throw errors.FMCP_ERR_STATE_STORE(`Redis at ${this.where} is not connected: the gateway is not started or is stopping`);
    try {
      return await fn(client);
    } catch (err) {
      throw errors.FMCP_ERR_STATE_STORE(`Redis at ${this.where} could not ${what}: ${this.explain(err as Error)}`);
    }
  }

  /** A transaction's replies, or the first error among them. */
  private check(results: [Error | null, unknown][] | null): [Error | null, unknown][] {
    if (!results) throw errors.FMCP_ERR_STATE_STORE(`Redis at ${this.where} aborted a transaction`);
    const failed = results.find(([err]) => err);
    if (failed) throw errors.FMCP_ERR_STATE_STORE(`Redis at ${this.where} refused a command: ${failed[0]!.message}`);
    return results;
  }

  private explain(err: Error): string {
    const message = err.message ?? String(err);
    if (message.includes("Stream isn't writeable") || message.includes('Connection is closed')) {
      return `not connected (${this.lastError ?? 'the connection closed'}); reconnecting`;
    }
    if (message.includes('Command timed out')) return `no answer within ${this.settings.commandTimeoutMs} ms`;
    if (err.name === 'MaxRetriesPerRequestError') return `the connection was lost (${this.lastError ?? message})`;
    return message;
  }
}
