import { randomBytes } from 'node:crypto';
import { jsonText, type EventStream, type Identity, type JsonObject, type ServerDefinition } from '../../core/index.js';
import type { SessionLike } from './call-sink.js';

/** A client session: a Streamable HTTP session, or a channel opened by another plugin (legacy SSE). */
export const newSessionId = (prefix = ''): string => prefix + randomBytes(16).toString('hex');

export class Session implements SessionLike {
  readonly serverRequests = new Set<string>();
  readonly subscriptions = new Set<string>();
  logLevel: string | undefined;
  lastSeen = Date.now();
  stream: EventStream | undefined;

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

/** Sessions by id, indexed by instance for broadcasts; idle sessions without a stream expire. */
export class SessionStore {
  private readonly byId = new Map<string, Session>();
  private readonly byInstance = new Map<string, Set<Session>>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly idleMs: number,
    private readonly maxSessions: number,
    private readonly onExpire: (session: Session) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  add(session: Session): void {
    if (this.byId.size >= this.maxSessions) this.evictOldest();
    this.byId.set(session.id, session);
    const set = this.byInstance.get(session.instanceKey) ?? new Set();
    set.add(session);
    this.byInstance.set(session.instanceKey, set);
    this.ensureSweep();
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  delete(session: Session): void {
    this.byId.delete(session.id);
    const set = this.byInstance.get(session.instanceKey);
    set?.delete(session);
    if (set?.size === 0) this.byInstance.delete(session.instanceKey);
    session.stream?.close('session ended');
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
  }

  private evictOldest(): void {
    let oldest: Session | undefined;
    for (const s of this.byId.values()) if (!oldest || s.lastSeen < oldest.lastSeen) oldest = s;
    if (oldest) this.onExpire(oldest);
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
