import { errors, type EventBus, type Identity, type JsonObject, type Logger, type ServerDefinition, type StrategyRegistry, type TransportFactory } from '../../core/index.js';
import { ServerInstance, type InstanceOptions } from './server-instance.js';

export interface PoolOptions {
  readonly callTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly maxQueued: number;
  /** most processes per server for distinct identities or sessions */
  readonly maxInstances: number;
  /** an identity's or session's process stops after this long without calls */
  readonly instanceIdleMs: number;
  /** a server the transport gave up on is started afresh by the first call after this long */
  readonly retryFailedAfterMs: number;
  readonly clientInfo: { name: string; version: string };
  /** where server instances report upstream.* and call.completed events */
  readonly events?: EventBus;
}

type Hooks = Pick<InstanceOptions, 'sessions' | 'broadcast' | 'onReady'>;

/**
 * Server instances by server and identity: one shared instance per server for anonymous callers, one per
 * identity (token hash) or per session otherwise, capped and stopped when idle.
 */
export class InstancePool {
  private readonly instances = new Map<string, ServerInstance>();
  /** instance keys by share: the server's name, or the server's name and an identity's quota */
  private readonly perServer = new Map<string, Set<string>>();
  private idleTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly transports: StrategyRegistry<TransportFactory>,
    private readonly options: PoolOptions,
    private readonly log: Logger,
    private readonly hooksFor: (server: ServerDefinition, key: string) => Hooks,
  ) {}

  /** The key of the instance that serves this caller; `ownProcess` gives a session a process of its own. */
  static keyOf(server: ServerDefinition, identity: Identity, sessionId?: string, ownProcess = false): string {
    if ((ownProcess || server.entry.isolation === 'session') && sessionId) return `${server.name}\u0000session:${sessionId}`;
    return `${server.name}\u0000${identity.key}`;
  }

  peek(key: string): ServerInstance | undefined {
    return this.instances.get(key);
  }

  /**
   * The instance for this key, started on first use. `clientCapabilities` are declared to the server in
   * the gateway's handshake: those of the one session a process of its own serves, none otherwise.
   */
  get(server: ServerDefinition, identity: Identity, key: string, clientCapabilities: JsonObject = {}): ServerInstance {
    const found = this.instances.get(key);
    if (found && found.state !== 'failed' && found.state !== 'stopped') return found;
    // a failed shared server answers with its failure for a while (its transport may keep retrying it
    // with backoff meanwhile), then gets a fresh start on the next call; others are retried by their transport
    const fresh = found?.state === 'failed' && key === `${server.name}\u0000shared` && Date.now() - found.failedAt >= this.options.retryFailedAfterMs;
    if (found?.state === 'failed' && !fresh && (found.recovering || key === `${server.name}\u0000shared`)) return found;
    if (found) {
      this.remove(key, found);
      if (found.recovering) void found.stop();
    }
    if (this.stopped) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, 'the gateway is stopping');
    const shared = key === `${server.name}\u0000shared`;
    const group = InstancePool.groupOf(server, identity);
    if (!shared) this.makeRoom(server, group, identity.quota?.max ?? this.options.maxInstances);
    const factory = this.transports.get(server.transport);
    if (!factory) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, `no transport "${server.transport}"`);
    const label = shared ? server.name : `${server.name}#${key.slice(server.name.length + 1, server.name.length + 13)}`;
    const log = this.log.child({ server: label });
    const upstream = factory.create({ server, env: identity.env, identity, label, log, events: this.options.events, clientCapabilities });
    const instance = new ServerInstance({ name: server.name, upstream, log, clientCapabilities, ...this.options, ...this.hooksFor(server, key) });
    this.instances.set(key, instance);
    if (!shared) {
      const set = this.perServer.get(group) ?? new Set();
      set.add(key);
      this.perServer.set(group, set);
      this.ensureIdleSweep();
    }
    instance.start().catch((err: Error) => log.error({ error: err.message }, 'server did not start'));
    return instance;
  }

  all(): ServerInstance[] {
    return [...this.instances.values()];
  }

  instancesOf(serverName: string): ServerInstance[] {
    const out: ServerInstance[] = [];
    for (const [key, instance] of this.instances) if (key.startsWith(`${serverName}\u0000`)) out.push(instance);
    return out;
  }

  /** The instances of a server with their keys. */
  entriesOf(serverName: string): [string, ServerInstance][] {
    const out: [string, ServerInstance][] = [];
    for (const entry of this.instances) if (entry[0].startsWith(`${serverName}\u0000`)) out.push(entry);
    return out;
  }

  /** Stops the instance of a session that had a process of its own. */
  async release(key: string): Promise<void> {
    const instance = this.instances.get(key);
    if (instance) {
      this.remove(key, instance);
      await instance.stop();
    }
  }

  async stopAll(): Promise<void> {
    this.stopped = true;
    clearInterval(this.idleTimer);
    const all = [...this.instances.values()];
    this.instances.clear();
    this.perServer.clear();
    await Promise.all(all.map((i) => i.stop().catch(() => undefined)));
  }

  private remove(key: string, instance: ServerInstance): void {
    if (this.instances.get(key) === instance) this.instances.delete(key);
    for (const set of this.perServer.values()) set.delete(key);
  }

  /** The share of a server's processes an identity draws from: its `quota`, or the server's common one. */
  private static groupOf(server: ServerDefinition, identity: Identity): string {
    return identity.quota ? `${server.name}\u0000${identity.quota.name}` : server.name;
  }

  /** Beyond the cap of a share, the least recently used idle instance of the same share stops. */
  private makeRoom(server: ServerDefinition, group: string, max: number): void {
    const keys = this.perServer.get(group);
    if (!keys || keys.size < max) return;
    let victim: [string, ServerInstance] | undefined;
    for (const key of keys) {
      const instance = this.instances.get(key);
      if (!instance || instance.inFlight > 0) continue;
      if (!victim || instance.lastUsed < victim[1].lastUsed) victim = [key, instance];
    }
    if (!victim) {
      throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, `all ${max} of its processes${group === server.name ? '' : ' for such callers'} are busy with other callers; retry shortly`);
    }
    this.remove(victim[0], victim[1]);
    void victim[1].stop();
  }

  private ensureIdleSweep(): void {
    if (this.idleTimer) return;
    const every = Math.max(100, Math.min(30_000, Math.floor(this.options.instanceIdleMs / 2)));
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      for (const keys of this.perServer.values()) {
        for (const key of keys) {
          const instance = this.instances.get(key);
          if (instance && instance.inFlight === 0 && now - instance.lastUsed > this.options.instanceIdleMs) {
            this.remove(key, instance);
            void instance.stop();
          }
        }
      }
    }, every);
    this.idleTimer.unref();
  }
}
