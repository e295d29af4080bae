import { isIPv6 } from 'node:net';
import { errors, type EventStream, type FluidError, type Logger } from '../../core/index.js';

export interface SessionLimitOptions {
  /** most sessions at once */
  readonly maxSessions: number;
  /** most sessions from one client address (IPv6: one /64); 0 for no limit */
  readonly maxSessionsPerAddress: number;
  /** at the limit, a session without an open stream and idle this long may be ended to make room */
  readonly evictIdleMs: number;
}

/** Warnings about the limit at most this often; what happened meanwhile is counted into the next one. */
const WARN_EVERY_MS = 60_000;
/** A fruitless search for an idle session is not repeated for this long (a flood at the limit stays O(1)). */
const RESCAN_MS = 1000;
const MAX_RETRY_AFTER_S = 3600;

/** A new session refused at a limit: 503 (the gateway's) or 429 (the client address's), with Retry-After. */
export type SessionLimitError = FluidError & { readonly headers: Record<string, string>; readonly limit: number; readonly retryAfterSeconds: number };

/**
 * What holds a place among the sessions: a session, or a legacy HTTP+SSE stream of a client that has not
 * sent initialize yet (a PendingChannel, never confirmed, so it is ended first to make room).
 */
export interface Seat {
  confirmed: boolean;
  readonly channel?: unknown;
  readonly address?: string | undefined;
  readonly lastSeen: number;
  readonly stream?: EventStream | undefined;
}

export const isSessionLimitError = (err: unknown): err is SessionLimitError =>
  errors.FMCP_ERR_SESSION_LIMIT.is(err) || errors.FMCP_ERR_SESSION_LIMIT_ADDRESS.is(err);

/**
 * Who gets a session when sessions are many. At a limit, room is made by ending, in this order, the oldest
 * session that never confirmed its handshake (no `notifications/initialized` nor any other message since
 * `initialize`: what a flood of bare initialize requests leaves), then the session idle longest, when it
 * has been idle at least `evictIdleMs` without an open stream. A session in use is never ended for a new
 * one: the new one is refused instead. Channel sessions (legacy HTTP+SSE) live as long as their stream and
 * are never ended here; a client's legacy stream that has not sent initialize yet holds a place from the
 * moment it opens (so such streams are bounded by the same limits) and counts as unconfirmed: ending it
 * closes the stream.
 */
export class SessionLimits {
  /** sessions that have not confirmed their handshake, oldest first (a Set keeps insertion order) */
  private readonly unconfirmed = new Set<Seat>();
  private readonly byAddress = new Map<string, Set<Seat>>();
  private noIdleUntil = 0;
  private warnedAt = -Infinity;
  private evicted = 0;
  private refused = 0;

  constructor(
    private readonly options: SessionLimitOptions,
    private readonly end: (session: Seat) => void,
    private readonly log: Logger,
  ) {}

  track(session: Seat): void {
    if (!session.confirmed && !session.channel) this.unconfirmed.add(session);
    if (session.address === undefined) return;
    const set = this.byAddress.get(session.address) ?? new Set();
    set.add(session);
    this.byAddress.set(session.address, set);
  }

  untrack(session: Seat): void {
    this.unconfirmed.delete(session);
    if (session.address === undefined) return;
    const set = this.byAddress.get(session.address);
    set?.delete(session);
    if (set?.size === 0) this.byAddress.delete(session.address);
  }

  /** The client sent something after `initialize`: a session in use from now on. */
  confirm(session: Seat): void {
    if (session.confirmed) return;
    session.confirmed = true;
    this.unconfirmed.delete(session);
  }

  /**
   * Makes room for one more session from `address` among `all`, ending one session if it must; throws a
   * SessionLimitError when every session is in use. `where` names the endpoint, for the message.
   */
  makeRoom(all: Iterable<Seat>, size: number, address: string | undefined, where: string): void {
    const max = this.options.maxSessionsPerAddress;
    const mine = address === undefined ? undefined : this.byAddress.get(address);
    if (max > 0 && mine !== undefined && mine.size >= max) {
      const victim = this.oldestUnconfirmed(mine) ?? this.idlest(mine, false);
      if (!victim) {
        throw this.refuse('FMCP_ERR_SESSION_LIMIT_ADDRESS', max, mine,
          `Too many sessions from ${address}: it holds ${max} (--max-sessions-per-address, proxy option maxSessionsPerAddress), all in use, so ${where} opened no new one: end sessions it no longer needs (${where.endsWith('/sse') ? `close its ${where} event streams` : `DELETE ${where} with their Mcp-Session-Id`}) or retry after the time in Retry-After`);
      }
      this.evict(victim, 'address');
      return;
    }
    if (size < this.options.maxSessions) return;
    const victim = this.oldestUnconfirmed(this.unconfirmed) ?? this.idlest(all, true);
    if (!victim) {
      throw this.refuse('FMCP_ERR_SESSION_LIMIT', this.options.maxSessions, all,
        `Session limit reached: the gateway holds ${this.options.maxSessions} sessions (--max-sessions, proxy option maxSessions), all in use, so ${where} opened no new one: retry after the time in Retry-After, or call without a session (a JSON-RPC POST without initialize, or protocol 2026-07-28)`);
    }
    this.evict(victim, 'total');
  }

  private oldestUnconfirmed(among: Iterable<Seat>): Seat | undefined {
    for (const s of among) if (!s.confirmed && !s.channel) return s;
    return undefined;
  }

  /** The session idle longest, if idle long enough to be ended; `cached`: skip a search that just found none. */
  private idlest(among: Iterable<Seat>, cached: boolean): Seat | undefined {
    const now = Date.now();
    if (cached && now < this.noIdleUntil) return undefined;
    let best: Seat | undefined;
    for (const s of among) if (this.idleEnough(s, now) && (!best || s.lastSeen < best.lastSeen)) best = s;
    if (!best && cached) this.noIdleUntil = now + RESCAN_MS;
    return best;
  }

  private idleEnough(s: Seat, now: number): boolean {
    return !s.channel && (!s.stream || s.stream.closed) && now - s.lastSeen >= this.options.evictIdleMs;
  }

  /** When a session of `among` may next be ended for idleness, in whole seconds (bounded). */
  private retryAfter(among: Iterable<Seat>): number {
    const now = Date.now();
    let soonest = Infinity;
    for (const s of among) if (!s.channel && (!s.stream || s.stream.closed)) soonest = Math.min(soonest, s.lastSeen + this.options.evictIdleMs - now);
    if (soonest === Infinity) soonest = this.options.evictIdleMs;
    return Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(soonest / 1000)));
  }

  private refuse(code: 'FMCP_ERR_SESSION_LIMIT' | 'FMCP_ERR_SESSION_LIMIT_ADDRESS', limit: number, among: Iterable<Seat>, message: string): SessionLimitError {
    this.refused++;
    this.warn();
    const retryAfterSeconds = this.retryAfter(among);
    return Object.assign(errors[code](message), { headers: { 'retry-after': String(retryAfterSeconds) }, limit, retryAfterSeconds });
  }

  private evict(session: Seat, limit: 'total' | 'address'): void {
    this.evicted++;
    this.warn(limit);
    this.end(session);
  }

  private warn(limit?: 'total' | 'address'): void {
    const now = Date.now();
    if (now - this.warnedAt < WARN_EVERY_MS) return;
    this.warnedAt = now;
    this.log.warn(
      { evicted: this.evicted, refused: this.refused, maxSessions: this.options.maxSessions, maxSessionsPerAddress: this.options.maxSessionsPerAddress, limit },
      'session limit reached: ended unconfirmed or idle sessions to make room, and refused new ones when every session was in use (counts since the last warning)',
    );
    this.evicted = 0;
    this.refused = 0;
  }
}

/** The address a limit counts by: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64, where one host has them all. */
export function clientAddress(remote: string | undefined): string | undefined {
  if (remote === undefined) return undefined;
  if (remote.startsWith('::ffff:') && remote.includes('.')) return remote.slice(7);
  if (!isIPv6(remote)) return remote;
  const [head = '', tail = ''] = remote.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = remote.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':')}::/64`;
}
