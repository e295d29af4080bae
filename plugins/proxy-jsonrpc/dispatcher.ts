import {
  errors,
  FluidError,
  type Identity,
  type JsonObject,
  type Logger,
  type ServerCatalog,
  type ServerDefinition,
  type StrategyRegistry,
  type TransportFactory,
} from '../../core/index.js';
import { InstancePool, isInstanceLimitError, type PoolOptions } from './instance-pool.js';
import { errorResponse, isObject, negotiateVersion, SERVER_UNAVAILABLE } from './jsonrpc.js';
import type { CallSink } from './call-sink.js';
import type { ServerInstance } from './server-instance.js';
import { capabilitiesFor, needsOwnProcess } from './server-requests.js';
import { interceptSessionState, releaseSessionState, restoreSessionState } from './session-state.js';
import type { SessionLimitOptions } from './session-limits.js';
import { newSessionId, Session, SessionStore, type PendingChannel } from './sessions.js';

export interface DispatcherOptions extends PoolOptions, SessionLimitOptions {
  readonly sessionIdleMs: number;
  /** what every session id starts with (the replica's id and a dot, or nothing) */
  readonly sessionIdPrefix?: string;
}

/**
 * What every client-facing transport shares: sessions, the instance pool, and the handling of each kind
 * of client message. The HTTP endpoint and the channel broker are thin layers over it.
 */
export class Dispatcher {
  readonly pool: InstancePool;
  readonly sessions: SessionStore;
  /** also told every broadcast notification of an instance (2026-07-28 `subscriptions/listen` streams) */
  readonly broadcastListeners = new Set<(instanceKey: string, message: JsonObject) => void>();
  /** open streams without a session by instance key (2026-07-28 `subscriptions/listen`): their process is in use */
  private readonly openStreams = new Map<string, number>();

  constructor(
    readonly catalog: ServerCatalog,
    transports: StrategyRegistry<TransportFactory>,
    private readonly options: DispatcherOptions,
    private readonly log: Logger,
  ) {
    this.sessions = new SessionStore(options.sessionIdleMs, options, (s) => this.endSession(s), log);
    this.pool = new InstancePool(transports, options, log, (_server, key) => ({
      sessions: () => this.sessions.ofInstance(key),
      broadcast: (message) => {
        for (const listener of this.broadcastListeners) listener(key, message);
      },
      onReady: () => {
        const instance = this.pool.peek(key);
        if (instance) restoreSessionState(instance, this.sessions.ofInstance(key));
      },
    }), {
      holdsStream: (key) => {
        if (this.openStreams.has(key)) return true;
        for (const s of this.sessions.boundTo(key) ?? []) if (s.channel || (s.stream && !s.stream.closed)) return true;
        return false;
      },
      unconfirmed: (key) => {
        const bound = this.sessions.boundTo(key);
        if (!bound || bound.size === 0) return false;
        for (const s of bound) if (s.confirmed) return false;
        return true;
      },
      lastSeen: (key) => {
        let last = 0;
        for (const s of this.sessions.boundTo(key) ?? []) last = Math.max(last, s.lastSeen);
        return last;
      },
      // the process is gone: its sessions end, so their clients get 404 and initialize again, never a silent new process
      stopped: (key) => {
        for (const s of this.sessions.ofInstance(key)) this.endSession(s);
      },
    });
  }

  /** A stream without a session holds the key's process in use until the returned function is called. */
  holdStream(key: string): () => void {
    this.openStreams.set(key, (this.openStreams.get(key) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.openStreams.get(key) ?? 1) - 1;
      if (left > 0) this.openStreams.set(key, left);
      else this.openStreams.delete(key);
    };
  }

  server(name: string): ServerDefinition {
    const server = this.catalog.get(name);
    if (!server) throw errors.FMCP_ERR_UNKNOWN_SERVER(name, this.catalog.list().map((s) => `"${s.name}"`).join(', ') || 'no packages');
    return server;
  }

  instanceFor(server: ServerDefinition, identity: Identity, session?: Session): ServerInstance {
    const key = session ? session.instanceKey : InstancePool.keyOf(server, identity);
    return this.pool.get(server, session ? session.identity : identity, key);
  }

  /**
   * Answers initialize from the server's kept answer and opens a session. A session that declares
   * sampling, elicitation or roots gets a process of its own, so the server requests it receives are
   * provably its own (see server-requests.ts). At the session limits, it ends an unconfirmed or idle
   * session to make room, or throws a SessionLimitError (`address`: the client's, for the per-address limit;
   * `seat`: the place a channel already holds, which the session takes).
   */
  async initialize(server: ServerDefinition, identity: Identity, message: JsonObject, channel?: (m: JsonObject) => void, address?: string, seat?: PendingChannel): Promise<{ session: Session; response: JsonObject }> {
    const where = `/${server.name}/${channel ? 'sse' : 'mcp'}`;
    // refused before any process starts for it; checked again when it is added (others may have come meanwhile)
    if (!seat?.held) this.sessions.makeRoom(address, where);
    const params = isObject(message.params) ? message.params : {};
    const capabilities = isObject(params.capabilities) ? params.capabilities : {};
    const ownProcess = server.entry.isolation === 'session' || needsOwnProcess(capabilities);
    const id = newSessionId(this.options.sessionIdPrefix);
    const key = InstancePool.keyOf(server, identity, id, ownProcess);
    const instance = this.pool.get(server, identity, key, ownProcess ? capabilitiesFor(capabilities) : {});
    try {
      await withTimeout(instance.whenReady(), this.options.handshakeTimeoutMs, `Server "${server.name}" start`);
    } catch (err) {
      if (ownProcess) void this.pool.release(key);
      if (err instanceof FluidError && err.code === 'FMCP_ERR_TIMEOUT') {
        throw new Error(`Server "${server.name}" is still starting (it has not answered the gateway's initialize within ${this.options.handshakeTimeoutMs} ms): retry once GET /health shows it ready`);
      }
      throw err;
    }
    const version = negotiateVersion(params.protocolVersion, instance.serverVersion);
    // a channel that held a place from its opening is a client's own stream (legacy HTTP+SSE)
    const transport = seat ? 'sse' : channel ? 'channel' : 'streamable-http';
    const session = new Session(id, server, identity, version, key, capabilities, ownProcess, channel, address, transport);
    try {
      this.sessions.add(session, where, seat);
    } catch (err) {
      if (ownProcess) void this.pool.release(key);
      throw err;
    }
    const response: JsonObject = { jsonrpc: '2.0', id: message.id, result: { ...instance.initResult, protocolVersion: version } };
    return { session, response };
  }

  /**
   * Marks a session as seen; when its caller's key changed under the same principal (a renewed token),
   * the session moves to the new key's process, which has the new credentials.
   */
  touch(session: Session, identity: Identity): void {
    session.lastSeen = Date.now();
    if (!session.confirmed) this.sessions.confirm(session);
    if (identity.key === session.identity.key) return;
    session.identity = identity;
    if (!session.ownProcess) this.sessions.move(session, InstancePool.keyOf(session.server, identity));
  }

  /** Sends a client request; returns a function that cancels it. */
  request(server: ServerDefinition, identity: Identity, session: Session | undefined, message: JsonObject, sink: CallSink): (reason: string) => void {
    if (session) this.touch(session, identity);
    let instance: ServerInstance;
    try {
      instance = this.instanceFor(server, identity, session);
    } catch (err) {
      if (isInstanceLimitError(err)) {
        const answer = errorResponse(message.id, SERVER_UNAVAILABLE, err.message, { limit: err.limit, retryAfterSeconds: err.retryAfterSeconds });
        if (sink.refused) sink.refused(answer, err.statusCode, err.headers);
        else sink.response(answer);
      } else sink.response(errorResponse(message.id, SERVER_UNAVAILABLE, (err as Error).message));
      return () => undefined;
    }
    if (session && interceptSessionState(instance, session, () => this.sessions.ofInstance(session.instanceKey), message, sink)) return () => undefined;
    const id = instance.call(message, sink);
    return (reason) => instance.cancel(id, reason);
  }

  /** A client notification: most go to the server; a few are the gateway's own business. */
  notification(server: ServerDefinition, identity: Identity, session: Session | undefined, message: JsonObject): void {
    if (session) this.touch(session, identity);
    if (message.method === 'notifications/initialized') return; // the gateway did the server's handshake itself
    const instance = session ? this.pool.peek(session.instanceKey) : this.pool.peek(InstancePool.keyOf(server, identity));
    if (!instance) return;
    if (message.method === 'notifications/cancelled') {
      const params = isObject(message.params) ? message.params : undefined;
      const id = params ? instance.findCall(session, params.requestId) : undefined;
      if (id !== undefined) instance.cancel(id, typeof params?.reason === 'string' ? params.reason : 'cancelled by the client');
      return;
    }
    instance.notify(message);
  }

  /** A client's answer to a server request. */
  response(session: Session | undefined, message: JsonObject): void {
    if (!session) return;
    session.lastSeen = Date.now();
    if (!session.confirmed) this.sessions.confirm(session);
    const instance = this.pool.peek(session.instanceKey);
    if (!instance?.answer(message.id, message, session)) {
      this.log.debug({ server: session.server.name }, 'dropped a client response to an unknown server request');
    }
  }

  /** Ends a session (once); `reason`, when given, is told to its client's next request and closes its stream. */
  endSession(session: Session, reason?: string): void {
    if (session.ended) return;
    session.ended = true;
    if (reason !== undefined) this.sessions.rememberEnded(session, reason);
    this.sessions.delete(session, reason);
    const instance = this.pool.peek(session.instanceKey);
    if (instance && !session.ownProcess) releaseSessionState(instance, session, this.sessions.ofInstance(session.instanceKey));
    instance?.dropSession(session);
    if (session.ownProcess) void this.pool.release(session.instanceKey);
    session.onEnd?.();
  }

  /** Ends every session bound to the process of `key` (it is being stopped), telling their clients `reason`. */
  endSessionsOf(key: string, reason: string): number {
    const bound = this.sessions.ofInstance(key);
    for (const s of bound) this.endSession(s, reason);
    return bound.length;
  }

  /** Lets calls in flight finish for up to `ms`, then answers the rest with a JSON-RPC error. */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.pool.all().some((i) => i.inFlight > 0)) await new Promise((r) => setTimeout(r, 20));
    for (const instance of this.pool.all()) {
      if (instance.inFlight > 0) instance.failAll(`The gateway is stopping and the call did not finish within ${ms} ms: retry it once the gateway is back`);
    }
  }

  async stop(): Promise<void> {
    this.sessions.stop();
    for (const s of this.sessions.all()) this.sessions.delete(s);
    await this.pool.stopAll();
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(errors.FMCP_ERR_TIMEOUT(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
