import { networkInterfaces } from 'node:os';
import type { Logger, ReplicaDirectory } from '../../core/index.js';
import type { RedisStateStore } from './redis-store.js';

/** What a replica id may be (as the kernel checks it): anything else is never looked up. */
const REPLICA_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Deletes the key only while it still holds this replica's URL (a successor with the same id keeps its own). */
const WITHDRAW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

export interface ReplicaDirectorySettings {
  /** key prefix: entries are `<prefix>replica:<id>` */
  readonly prefix: string;
  /** how long an entry lives without a refresh, ms (refreshed every third of it) */
  readonly ttlMs: number;
  readonly log: Logger;
}

/**
 * The replicas' internal URLs in Redis, one key per replica id with an expiry the replica keeps refreshing:
 * a replica that stops removes its key, one that dies drops out after `ttlMs`.
 */
export class RedisReplicaDirectory implements ReplicaDirectory {
  private url: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly store: RedisStateStore,
    readonly self: string,
    private readonly settings: ReplicaDirectorySettings,
  ) {}

  /** Publishes this replica's URL and keeps it fresh until `withdraw()`. */
  async publish(url: string): Promise<void> {
    this.url = url;
    const key = this.keyOf(this.self);
    const previous = await this.store.command('read the replica directory', (c) => c.get(key));
    if (previous !== null && previous !== url) {
      this.settings.log.warn({ replica: this.self, registered: previous, url }, 'another replica was registered with this replica id: each replica needs an id of its own (--replica-id); this one takes it over');
    }
    await this.write();
    this.timer = setInterval(() => void this.refresh(), Math.max(100, Math.floor(this.settings.ttlMs / 3)));
    this.timer.unref();
    this.settings.log.info({ replica: this.self, url }, 'replica registered in the shared store: other replicas forward the retries of calls it holds here');
  }

  async lookup(id: string): Promise<string | undefined> {
    if (!REPLICA_ID.test(id)) return undefined;
    const url = await this.store.command('read the replica directory', (c) => c.get(this.keyOf(id)));
    return url ?? undefined;
  }

  /** Stops refreshing and removes this replica's entry (bounded by the store's command timeout). */
  async withdraw(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const url = this.url;
    this.url = undefined;
    if (url === undefined) return;
    try {
      await this.store.command('leave the replica directory', (c) => c.eval(WITHDRAW, 1, this.keyOf(this.self), url));
    } catch (err) {
      this.settings.log.warn({ replica: this.self, error: (err as Error).message }, `could not remove this replica from the shared store: it drops out within ${this.settings.ttlMs} ms`);
    }
  }

  private async refresh(): Promise<void> {
    try {
      await this.write();
      if (this.failing) this.settings.log.info({ replica: this.self }, 'replica registration refreshed again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.settings.log.warn({ replica: this.self, error: (err as Error).message }, 'could not refresh this replica\'s registration: other replicas cannot forward retries here while it is missing');
      this.failing = true;
    }
  }

  private async write(): Promise<void> {
    const url = this.url;
    if (url === undefined) return;
    await this.store.command('register this replica', (c) => c.set(this.keyOf(this.self), url, 'PX', this.settings.ttlMs));
  }

  private keyOf(id: string): string {
    return `${this.settings.prefix}replica:${id}`;
  }
}

/**
 * The URL other replicas reach this one at, by default: the address it listens on; for a wildcard bind
 * (0.0.0.0, ::) the first non-internal IPv4 address of the machine, else loopback.
 */
export function defaultReplicaUrl(address: { host: string; port: number }): string {
  let host = address.host;
  if (host === '0.0.0.0' || host === '::' || host === '') {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    host = external?.address ?? '127.0.0.1';
  }
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
