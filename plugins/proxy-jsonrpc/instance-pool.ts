import { errors, type EventBus, type FluidError, type Identity, type JsonObject, type Logger, type ServerDefinition, type StrategyRegistry, type TransportFactory } from '../../core/index.js';
import { ServerInstance, type InstanceOptions } from './server-instance.js';

export interface PoolOptions {
  readonly callTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly maxQueued: number;
  /** most processes per server for distinct identities or sessions */
  readonly maxInstances: number;
  /** an identity's or session's process stops after this long without calls */
  readonly instanceIdleMs: number;
  /** at `maxInstances`, a process idle this long (no call in flight, no open stream) may be stopped for a new one */
  readonly instanceEvictIdleMs: number;
  /** a server the transport gave up on is started afresh by the first call after this long */
  readonly retryFailedAfterMs: number;
  readonly clientInfo: { name: string; version: string };
  /** where server instances report upstream.* and call.completed events */
  readonly events?: EventBus;
}

type Hooks = Pick<InstanceOptions, 'sessions' | 'broadcast' | 'onReady'>;

/** What the pool asks of the clients of a process before it stops one that is not shared. */
export interface PoolBindings {
  /** a client holds an open stream on the key's process (a session's GET or HTTP+SSE stream, a listen stream) */
  holdsStream(key: string): boolean;
  /** every session bound to the key's process is still waiting for its handshake to be confirmed (false when none is bound) */
  unconfirmed(key: string): boolean;
  /** when a session of the key's process was last seen (ms since the epoch), 0 when none */
  lastSeen(key: string): number;
  /** the pool stopped the key's process (to make room, or idle): end the sessions bound to it */
  stopped(key: string): void;
}

const NO_BINDINGS: PoolBindings = { holdsStream: () => false, unconfirmed: () => false, lastSeen: () => 0, stopped: () => undefined };

/** Warnings about the process limit at most this often per share; what happened meanwhile is counted into the next one. */
const WARN_EVERY_MS = 60_000;
const MAX_RETRY_AFTER_S = 3600;

/** A process refused at `maxInstances` (or an identity's quota): 503 with Retry-After. */
export type InstanceLimitError = FluidError & { readonly headers: Record<string, string>; readonly limit: number; readonly retryAfterSeconds: number };

export const isInstanceLimitError = (err: unknown): err is InstanceLimitError => errors.FMCP_ERR_INSTANCE_LIMIT.is(err);

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
  /** per share: when its limit was last warned about, and what happened since */
  private readonly warnings = new Map<string, { at: number; evicted: number; refused: number }>();

  constructor(
    private readonly transports: StrategyRegistry<TransportFactory>,
    private readonly options: PoolOptions,
    private readonly log: Logger,
    private readonly hooksFor: (server: ServerDefinition, key: string) => Hooks,
    private readonly bindings: PoolBindings = NO_BINDINGS,
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
      // replaced: stopped too, so nothing of it (a process, a retry timer, a /health entry) outlives it
      this.remove(key, found);
      void found.stop();
    }
    if (this.stopped) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, 'the gateway is stopping');
    const shared = key === `${server.name}\u0000shared`;
    const group = InstancePool.groupOf(server, identity);
    if (!shared) this.makeRoom(server, group, identity.quota);
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
    // the one error line of a failed start (the proxy's start-up summary leaves failed servers to it)
    instance.start().catch((err: Error) =>
      log.error({ error: err.message }, instance.recovering ? 'server is not ready; the gateway serves the others and keeps trying' : 'server did not start'));
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

  /** Stops the instance of a key (a session's own process, or one an operator stops); `why` is told to its calls in flight. */
  async release(key: string, why?: string): Promise<void> {
    const instance = this.instances.get(key);
    if (instance) {
      this.remove(key, instance);
      await instance.stop(why);
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

  /**
   * At the cap of a share, the process idle longest stops, when it has been idle at least
   * `instanceEvictIdleMs` with no call in flight and no open stream; the sessions bound to it end (their
   * clients get 404 and initialize again). A process in use is never stopped for a new one: that one is
   * refused with an InstanceLimitError instead.
   */
  private makeRoom(server: ServerDefinition, group: string, quota: Identity['quota']): void {
    const max = quota?.max ?? this.options.maxInstances;
    const keys = this.perServer.get(group);
    if (!keys || keys.size < max) return;
    const now = Date.now();
    // first a dead process, then one whose sessions never confirmed their handshake (so a flood of bare
    // initialize requests churns its own processes, never a confirmed user's), then the one idle longest
    let victim: { key: string; instance: ServerInstance; rank: number; last: number } | undefined;
    let soonest = Infinity;
    for (const key of keys) {
      const instance = this.instances.get(key);
      if (!instance) continue;
      const dead = instance.state === 'failed' && !instance.recovering;
      if (!dead && (instance.inFlight > 0 || this.bindings.holdsStream(key))) continue;
      const last = dead ? 0 : this.lastActive(key, instance);
      const rank = dead ? 0 : this.bindings.unconfirmed(key) ? 1 : 2;
      const wait = last + this.options.instanceEvictIdleMs - now;
      if (rank === 2 && wait > 0) {
        soonest = Math.min(soonest, wait);
        continue;
      }
      if (!victim || rank < victim.rank || (rank === victim.rank && last < victim.last)) victim = { key, instance, rank, last };
    }
    const busy = quota ? `${max} processes busy for its "${quota.name}" callers (their limit)` : `${max} processes busy (limit: --max-instances, proxy option maxInstances)`;
    const raise = quota ? 'that limit (their auth strategy sets it, e.g. unverifiedProcesses)' : '--max-instances (maxInstances)';
    const holds = quota ? `its ${max} processes for "${quota.name}" callers` : `${max} processes (--max-instances, proxy option maxInstances)`;
    const counts = this.counts(group);
    if (!victim) {
      counts.refused++;
      this.warn(group, server, holds, raise);
      if (soonest === Infinity) soonest = this.options.instanceEvictIdleMs;
      const retryAfterSeconds = Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(soonest / 1000)));
      const message = `Server "${server.name}" has ${busy}, each with a call in flight, an open stream or a message in the last ${this.options.instanceEvictIdleMs / 1000} s, so no process was started for this one: retry after the time in Retry-After, or raise ${raise}`;
      throw Object.assign(errors.FMCP_ERR_INSTANCE_LIMIT(message), { headers: { 'retry-after': String(retryAfterSeconds) }, limit: max, retryAfterSeconds });
    }
    counts.evicted++;
    this.warn(group, server, holds, raise);
    this.stopKey(victim.key, victim.instance);
  }

  /** The last sign of use of a key's process: its last call or notification, or its sessions' last message. */
  private lastActive(key: string, instance: ServerInstance): number {
    return Math.max(instance.lastUsed, this.bindings.lastSeen(key));
  }

  /** Stops a process the pool chose to stop, and ends the sessions bound to it. */
  private stopKey(key: string, instance: ServerInstance): void {
    this.remove(key, instance);
    void instance.stop();
    this.bindings.stopped(key);
  }

  private counts(group: string): { at: number; evicted: number; refused: number } {
    let counts = this.warnings.get(group);
    if (!counts) this.warnings.set(group, (counts = { at: -Infinity, evicted: 0, refused: 0 }));
    return counts;
  }

  private warn(group: string, server: ServerDefinition, holds: string, raise: string): void {
    const counts = this.counts(group);
    const now = Date.now();
    if (now - counts.at < WARN_EVERY_MS) return;
    this.log.warn(
      { server: server.name, evicted: counts.evicted, refused: counts.refused, instanceEvictIdleMs: this.options.instanceEvictIdleMs },
      `process limit reached: server "${server.name}" holds ${holds}; stopped ${counts.evicted} idle processes (their sessions ended) and refused ${counts.refused} new ones (counts since the last warning): raise ${raise} if this is normal load`,
    );
    counts.at = now;
    counts.evicted = 0;
    counts.refused = 0;
  }

  private ensureIdleSweep(): void {
    if (this.idleTimer) return;
    const every = Math.max(100, Math.min(30_000, Math.floor(this.options.instanceIdleMs / 2)));
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      for (const keys of this.perServer.values()) {
        for (const key of keys) {
          const instance = this.instances.get(key);
          if (!instance || instance.inFlight > 0 || this.bindings.holdsStream(key)) continue;
          if (now - this.lastActive(key, instance) > this.options.instanceIdleMs) this.stopKey(key, instance);
        }
      }
    }, every);
    this.idleTimer.unref();
  }
}
