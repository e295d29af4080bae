import type { Identity, JsonObject, Logger, ServerDefinition } from '../../core/index.js';
import { errorResponse, SERVER_UNAVAILABLE } from './jsonrpc.js';
import { isInstanceLimitError, type InstancePool } from './instance-pool.js';
import type { CallSink } from './call-sink.js';
import { SERVER_REQUEST_CAPABILITIES } from './server-requests.js';

/** What a process that may send server requests is told the client can do (the bridge answers what a request cannot). */
const DECLARED: JsonObject = { sampling: {}, elicitation: {}, roots: {} };

/** How long a call waits for a free exclusive process before it is refused, ms (short: see ExclusiveCalls). */
export const EXCLUSIVE_WAIT_MS = 3000;
/** Refusals are warned about at most this often per server; what happened meanwhile is counted into the next one. */
const WARN_EVERY_MS = 60_000;
const MAX_RETRY_AFTER_S = 3600;

export interface ExclusiveCallsOptions {
  /** processes per server and caller that serve such calls, one call each at a time (default 4) */
  readonly processes: number;
  /** how long a call waits for one of them to be free before it is refused with 503, ms */
  readonly waitMs: number;
  /** a call ends at the latest this long after it was sent (the proxy's callTimeoutMs): what Retry-After is made from */
  readonly callTimeoutMs: number;
}

/**
 * 2026-07-28 requests that declare sampling, elicitation or roots run on processes of their own (which
 * declare those to the server, so its lists offer what needs them), one call per process at a time: a server request then provably belongs to the one call in flight there (server-requests.ts),
 * including while that call waits for the client's MRTR retry. A small set of such processes per server
 * and caller is kept. A call finding them all busy waits `waitMs` (a few seconds) for one, then is
 * refused with 503 and Retry-After (when the oldest of them ends at the latest). Rounds that wait for the
 * client's input are never ended early to make room: a person may still be answering an elicitation
 * form or approving a sampling request, and ending the round would make that client's correct retry
 * fail; a refusal is visible and says when to retry, and an abandoned round ends by itself
 * (inputTimeoutMs, callTimeoutMs).
 */
export class ExclusiveCalls {
  /** slots in use, with when their call was sent */
  private readonly busy = new Map<string, number>();
  private readonly waiters = new Map<string, (() => void)[]>();
  /** per server: when refusals were last warned about, and how many since */
  private readonly warnings = new Map<string, { at: number; refused: number }>();

  constructor(
    private readonly pool: InstancePool,
    private readonly options: ExclusiveCallsOptions,
    private readonly log: Logger,
  ) {}

  /** True when this request of a 2026-07-28 client must run alone on its process. */
  static needed(capabilities: JsonObject): boolean {
    return SERVER_REQUEST_CAPABILITIES.some((c) => capabilities[c] !== undefined);
  }

  /** Sends the call on a free exclusive process (waiting briefly for one if needed); returns a function that cancels it. */
  request(server: ServerDefinition, identity: Identity, message: JsonObject, sink: CallSink): (reason: string) => void {
    const base = `${server.name}\u0000exclusive:${identity.key}`;
    let cancel: ((reason: string) => void) | undefined;
    let gaveUp = false;
    let timer: NodeJS.Timeout | undefined;
    const attempt = (): boolean => {
      for (let slot = 0; slot < this.options.processes; slot++) {
        const key = `${base}#${slot}`;
        if (this.busy.has(key)) continue;
        this.busy.set(key, Date.now());
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          this.busy.delete(key);
          this.wake(base);
        };
        try {
          const instance = this.pool.get(server, identity, key, DECLARED);
          const id = instance.call(message, releasing(sink, release));
          cancel = (reason) => instance.cancel(id, reason);
        } catch (err) {
          release();
          if (isInstanceLimitError(err) && sink.refused) {
            sink.refused(errorResponse(message.id, SERVER_UNAVAILABLE, err.message, { limit: err.limit, retryAfterSeconds: err.retryAfterSeconds }), err.statusCode, err.headers);
          } else sink.response(errorResponse(message.id, SERVER_UNAVAILABLE, (err as Error).message));
        }
        return true;
      }
      return false;
    };
    const stopWaiting = (): void => {
      gaveUp = true;
      clearTimeout(timer);
      this.unqueue(base, waiter);
    };
    const waiter = (): void => {
      if (gaveUp) return;
      if (attempt()) clearTimeout(timer);
      else this.queue(base, waiter);
    };
    if (!attempt()) {
      this.queue(base, waiter);
      timer = setTimeout(() => {
        stopWaiting();
        this.refuse(server, base, message, sink);
      }, this.options.waitMs);
      timer.unref();
    }
    return (reason) => {
      if (cancel) cancel(reason);
      else stopWaiting();
    };
  }

  /** Every slot of `base` stayed busy for `waitMs`: 503 with Retry-After, and a warning naming the server. */
  private refuse(server: ServerDefinition, base: string, message: JsonObject, sink: CallSink): void {
    const n = this.options.processes;
    let oldest = Infinity;
    for (let slot = 0; slot < n; slot++) oldest = Math.min(oldest, this.busy.get(`${base}#${slot}`) ?? Infinity);
    const freeIn = oldest === Infinity ? 0 : oldest + this.options.callTimeoutMs - Date.now();
    const retryAfterSeconds = Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(freeIn / 1000)));
    const answer = errorResponse(message.id, SERVER_UNAVAILABLE,
      `Server "${server.name}" has all ${n} processes busy that serve this caller's 2026-07-28 calls declaring sampling, elicitation or roots (limit: ${n} per server and caller, one call each), ` +
      `each with a call in flight or waiting for its client's answer to input_required, and none was freed within ${this.options.waitMs} ms: ` +
      `complete the pending input_required rounds (retry each with its inputResponses) or abandon them (a round without a retry ends after inputTimeoutMs), ` +
      `then retry this call after ${retryAfterSeconds} s (Retry-After), or send it without those capabilities`,
      { limit: n, retryAfterSeconds });
    if (sink.refused) sink.refused(answer, 503, { 'retry-after': String(retryAfterSeconds) });
    else sink.response(answer);
    let counts = this.warnings.get(server.name);
    if (!counts) this.warnings.set(server.name, (counts = { at: -Infinity, refused: 0 }));
    counts.refused++;
    const now = Date.now();
    if (now - counts.at < WARN_EVERY_MS) return;
    this.log.warn(
      { server: server.name, refused: counts.refused, processes: n },
      `exclusive process limit reached: server "${server.name}" has all ${n} processes for a caller's 2026-07-28 calls declaring sampling, elicitation or roots busy (calls in flight or waiting for their client's input_required answer); refused ${counts.refused} calls with 503 (since the last warning): clients should complete or abandon their input_required rounds`,
    );
    counts.at = now;
    counts.refused = 0;
  }

  private queue(base: string, waiter: () => void): void {
    const list = this.waiters.get(base) ?? [];
    list.push(waiter);
    this.waiters.set(base, list);
  }

  private unqueue(base: string, waiter: () => void): void {
    const list = this.waiters.get(base);
    if (!list) return;
    const at = list.indexOf(waiter);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.waiters.delete(base);
  }

  private wake(base: string): void {
    const list = this.waiters.get(base);
    const next = list?.shift();
    if (list && list.length === 0) this.waiters.delete(base);
    next?.();
  }
}

/** The same sink, telling `release` when its call ended (answered, failed, timed out or cancelled). */
function releasing(sink: CallSink, release: () => void): CallSink {
  const wrapped: CallSink = {
    session: sink.session,
    modern: sink.modern,
    response: (message) => {
      release();
      sink.response(message);
    },
    notification: (message) => sink.notification(message),
    request: (message) => sink.request(message),
    cancelled: (clientId, reason) => {
      release();
      sink.cancelled?.(clientId, reason);
    },
  };
  if (sink.refused) {
    wrapped.refused = (message, status, headers) => {
      release();
      sink.refused!(message, status, headers);
    };
  }
  if (sink.takeServerRequest) wrapped.takeServerRequest = (message, answer) => sink.takeServerRequest!(message, answer);
  if (sink.canAnswer) wrapped.canAnswer = (message) => sink.canAnswer!(message);
  return wrapped;
}
