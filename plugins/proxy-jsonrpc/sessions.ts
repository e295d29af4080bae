import { randomBytes } from 'node:crypto';
import { jsonText, principalOf, type EventStream, type Identity, type JsonObject, type Logger, type ServerDefinition } from '../../core/index.js';
import type { SessionLike } from './call-sink.js';
import { SessionLimits, type Seat, type SessionLimitOptions } from './session-limits.js';

/** A client session: a Streamable HTTP session, or a channel opened by another plugin (legacy SSE). */
export const newSessionId = (prefix = ''): string => prefix + randomBytes(16).toString('hex');

/**
 * How a session's client reaches the gateway: Streamable HTTP (`/{name}/mcp`), a client's legacy HTTP+SSE
 * stream (`/{name}/sse`), or a plugin's own channel (a group's link to its member).
 */
export type SessionTransport = 'streamable-http' | 'sse' | 'channel';

export class Session implements SessionLike {
  readonly serverRequests = new Set<string>();
  readonly subscriptions = new Set<string>();
  logLevel: string | undefined;
  lastSeen = Date.now();
  stream: EventStream | undefined;
  /** the client sent something after initialize (notifications/initialized, a call): see session-limits.ts */
  confirmed = false;
  ended = false;
  /** told once when the session ends (a channel closes with it) */
  onEnd: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly server: ServerDefinition,
    /** the caller's current identity: replaced when its key changes under the same principal */
    public identity: Identity,
    readonly protocolVersion: string,
    /** the pool key of the instance that serves this session */
    public instanceKey: string,
    /** the capabilities the client declared in initialize */
    readonly capabilities: JsonObject,
    /** the session has a process of its own (`isolation: "session"`, or it may receive server requests) */
    readonly ownProcess: boolean,
    /** set for channel sessions: every message for the client goes here */
    readonly channel?: (message: JsonObject) => void,
    /** the client's address as the per-address limit counts it, when known */
    readonly address?: string,
    readonly transport: SessionTransport = channel ? 'channel' : 'streamable-http',
  ) {}

  push(message: JsonObject): boolean {
    if (this.channel) {
      this.channel(message);
      return true;
    }
    const stream = this.stream;
    if (!stream || stream.closed) return false;
    return stream.send(jsonText(message), 'message');
  }
}

/**
 * A client's legacy HTTP+SSE stream that has not sent initialize yet: it holds a place among the sessions
 * (see session-limits.ts) until its session opens or it closes. `close` ends the stream when the place is
 * taken back to make room.
 */
export class PendingChannel implements Seat {
  confirmed = false;
  readonly lastSeen = Date.now();
  held = true;
  constructor(
    readonly address: string | undefined,
    readonly close: () => void,
  ) {}
}

/** Why recently ended sessions ended, kept for this many of them (the oldest forgotten first). */
const ENDED_KEPT = 1000;

/** Sessions by id, indexed by instance for broadcasts; idle sessions without a stream expire. */
export class SessionStore {
  private readonly byId = new Map<string, Session>();
  private readonly byInstance = new Map<string, Set<Session>>();
  private readonly pending = new Set<PendingChannel>();
  /** why a session ended, by id, when it is worth telling its client (an operator stopped its process) */
  private readonly endedWhy = new Map<string, { principal: string; reason: string }>();
  private readonly limits: SessionLimits;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly idleMs: number,
    limits: SessionLimitOptions,
    private readonly onExpire: (session: Session) => void,
    log: Logger,
  ) {
    this.limits = new SessionLimits(limits, (seat) => {
      if (seat instanceof Session) onExpire(seat);
      else if (seat instanceof PendingChannel && seat.held) {
        this.release(seat);
        seat.close();
      }
    }, log);
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Makes room for a new session from `address` (ending an unconfirmed or idle one if it must), or throws
   * the SessionLimitError to answer; `where` names the endpoint in that error.
   */
  makeRoom(address: string | undefined, where: string): void {
    this.limits.makeRoom(this.byId.values(), this.byId.size + this.pending.size, address, where);
  }

  /** Holds a place for a client's legacy stream until it initializes (or throws the SessionLimitError to answer). */
  reserve(address: string | undefined, where: string, close: () => void): PendingChannel {
    this.makeRoom(address, where);
    const seat = new PendingChannel(address, close);
    this.pending.add(seat);
    this.limits.track(seat);
    return seat;
  }

  /** Gives a pending channel's place back (it closed, or its session takes the place); safe to repeat. */
  release(seat: PendingChannel): void {
    if (!seat.held) return;
    seat.held = false;
    this.pending.delete(seat);
    this.limits.untrack(seat);
  }

  /** Adds a session; `seat`: the place its channel held, which the session takes over. */
  add(session: Session, where: string, seat?: PendingChannel): void {
    if (seat) this.release(seat);
    this.makeRoom(session.address, where);
    this.byId.set(session.id, session);
    this.limits.track(session);
    const set = this.byInstance.get(session.instanceKey) ?? new Set();
    set.add(session);
    this.byInstance.set(session.instanceKey, set);
    this.ensureSweep();
  }

  /** The client used the session after initialize: it is in use (never ended to make room unless idle). */
  confirm(session: Session): void {
    this.limits.confirm(session);
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  delete(session: Session, reason = 'session ended'): void {
    this.byId.delete(session.id);
    this.limits.untrack(session);
    const set = this.byInstance.get(session.instanceKey);
    set?.delete(session);
    if (set?.size === 0) this.byInstance.delete(session.instanceKey);
    session.stream?.close(reason);
  }

  /** Remembers why a session ended, for its client's next request (bounded: the oldest are forgotten). */
  rememberEnded(session: Session, reason: string): void {
    this.endedWhy.delete(session.id);
    this.endedWhy.set(session.id, { principal: principalOf(session.identity), reason });
    if (this.endedWhy.size > ENDED_KEPT) this.endedWhy.delete(this.endedWhy.keys().next().value!);
  }

  /** Why the session `id` of `principal` ended, when it was remembered. */
  endedReason(id: string, principal: string): string | undefined {
    const ended = this.endedWhy.get(id);
    return ended?.principal === principal ? ended.reason : undefined;
  }

  /** Moves a session to the instance of another key (its caller's token was renewed). */
  move(session: Session, instanceKey: string): void {
    const old = this.byInstance.get(session.instanceKey);
    old?.delete(session);
    if (old?.size === 0) this.byInstance.delete(session.instanceKey);
    session.instanceKey = instanceKey;
    const set = this.byInstance.get(instanceKey) ?? new Set();
    set.add(session);
    this.byInstance.set(instanceKey, set);
  }

  /** Sessions served by one instance, unordered (no copy). */
  boundTo(key: string): ReadonlySet<Session> | undefined {
    return this.byInstance.get(key);
  }

  /** Sessions served by one instance, most recently seen first. */
  ofInstance(key: string): Session[] {
    const set = this.byInstance.get(key);
    if (!set) return [];
    return [...set].sort((a, b) => b.lastSeen - a.lastSeen);
  }

  all(): Session[] {
    return [...this.byId.values()];
  }

  stop(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.endedWhy.clear();
  }

  private ensureSweep(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      for (const s of this.byId.values()) {
        if (now - s.lastSeen > this.idleMs && !s.channel && (!s.stream || s.stream.closed)) this.onExpire(s);
      }
    }, Math.max(50, Math.min(60_000, Math.floor(this.idleMs / 2))));
    this.sweepTimer.unref();
  }
}
