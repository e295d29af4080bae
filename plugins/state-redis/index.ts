import { definePlugin, errors, isHttpUrl, PENDING_STATE, REPLICA_DIRECTORY, type Plugin } from '../../core/index.js';
import { displayUrl, RedisStateStore } from './redis-store.js';
import { defaultReplicaUrl, RedisReplicaDirectory } from './replica-directory.js';

export { RedisStateStore, displayUrl } from './redis-store.js';
export { RedisReplicaDirectory, defaultReplicaUrl } from './replica-directory.js';

export interface StateRedisOptions {
  /** `redis://[user:password@]host:port/db` or `rediss://…` (TLS) */
  url: string;
  /** prefix of every key the store writes (default `fmcp:`): keys are `<prefix>pending:<state>` and `<prefix>pending-index` */
  prefix?: string;
  /** bound on the connection at start and on each reconnection, ms (default 5000) */
  connectTimeoutMs?: number;
  /** bound on each command, ms (default 1500): a login start or callback answers within 2 s when Redis hangs (docs/deploy.md) */
  commandTimeoutMs?: number;
  /**
   * with a kernel `replicaId`: the URL the other replicas reach this one at, published in the store
   * (default: the address it listens on; give it when the replicas' network sees this one elsewhere)
   */
  replicaUrl?: string;
  /** how long a replica's published URL lives without a refresh, ms (default 15,000; refreshed every third) */
  replicaTtlMs?: number;
}

/** True for the URLs this plugin serves: redis:// and rediss:// with a host. */
export function isRedisUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const u = new URL(url);
  return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
}

/**
 * Pending logins in Redis (PENDING_STATE), so replicas behind a load balancer share them: a login
 * started on one replica completes on another, and a state is used once even when two race for it.
 * Redis unreachable at start stops start-up with an error naming the URL; during a login it is a 503.
 * Needs Redis 6.2 or later (GETDEL). With a kernel `replicaId` it also publishes where this replica is
 * reached (REPLICA_DIRECTORY), so the others can forward to it the requests that continue state it holds.
 */
export function stateRedis(options: StateRedisOptions): Plugin {
  if (typeof options?.url !== 'string' || !isRedisUrl(options.url)) {
    const given = typeof options?.url === 'string' && URL.canParse(options.url) ? displayUrl(options.url) : String(options?.url);
    throw errors.FMCP_ERR_PLUGIN_INVALID('"state-redis"', `url must be redis://host:port/db or rediss://host:port/db, got "${given}"`);
  }
  if (options.replicaUrl !== undefined && !isHttpUrl(options.replicaUrl)) {
    throw errors.FMCP_ERR_PLUGIN_INVALID('"state-redis"', `replicaUrl must be an http(s) URL such as http://10.0.0.7:8101, got "${options.replicaUrl}"`);
  }
  return definePlugin({
    name: 'state-redis',
    register(api) {
      const store = new RedisStateStore({
        url: options.url,
        prefix: options.prefix ?? 'fmcp:',
        connectTimeoutMs: options.connectTimeoutMs ?? 5000,
        commandTimeoutMs: options.commandTimeoutMs ?? 1500,
        log: api.log,
      });
      api.provide(PENDING_STATE, store);
      api.addHook('onStart', () => store.connect());
      const replicaId = api.kernel.options.replicaId;
      if (replicaId !== undefined) {
        const prefix = options.prefix ?? 'fmcp:';
        const directory = new RedisReplicaDirectory(store, replicaId, { prefix, ttlMs: options.replicaTtlMs ?? 15_000, log: api.log });
        api.provide(REPLICA_DIRECTORY, directory);
        api.addHook('onReady', () => directory.publish((options.replicaUrl ?? defaultReplicaUrl(api.kernel.address())).replace(/\/+$/, '')));
        // on stop (it no longer accepts connections by then): the entry goes before the store closes
        api.addHook('preClose', () => directory.withdraw());
      }
      api.addHook('onClose', () => store.close());
    },
  });
}
