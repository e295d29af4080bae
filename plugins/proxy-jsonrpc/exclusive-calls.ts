import type { Identity, JsonObject, ServerDefinition } from '../../core/index.js';
import { errorResponse, SERVER_UNAVAILABLE } from './jsonrpc.js';
import type { InstancePool } from './instance-pool.js';
import type { CallSink } from './call-sink.js';
import { SERVER_REQUEST_CAPABILITIES } from './server-requests.js';

/** What a process that may send server requests is told the client can do (the bridge answers what a request cannot). */
const DECLARED: JsonObject = { sampling: {}, elicitation: {}, roots: {} };

export interface ExclusiveCallsOptions {
  /** processes per server and caller that serve such calls, one call each at a time (default 4) */
  readonly processes: number;
  /** how long a call waits for one of them to be free, ms */
  readonly waitMs: number;
}

/**
 * 2026-07-28 requests that declare sampling, elicitation or roots run on processes of their own (which
 * declare those to the server, so its lists offer what needs them), one call per process at a time: a server request then provably belongs to the one call in flight there (server-requests.ts),
 * including while that call waits for the client's MRTR retry. A small set of such processes per server
 * and caller is kept; a call finding them all busy waits for one, bounded by `waitMs`.
 */
export class ExclusiveCalls {
  private readonly busy = new Set<string>();
  private readonly waiters = new Map<string, (() => void)[]>();

  constructor(
    private readonly pool: InstancePool,
    private readonly options: ExclusiveCallsOptions,
  ) {}

  /** True when this request of a 2026-07-28 client must run alone on its process. */
  static needed(capabilities: JsonObject): boolean {
    return SERVER_REQUEST_CAPABILITIES.some((c) => capabilities[c] !== undefined);
  }

  /** Sends the call on a free exclusive process (waiting for one if needed); returns a function that cancels it. */
  request(server: ServerDefinition, identity: Identity, message: JsonObject, sink: CallSink): (reason: string) => void {
    const base = `${server.name}\u0000exclusive:${identity.key}`;
    let cancel: ((reason: string) => void) | undefined;
    let gaveUp = false;
    let timer: NodeJS.Timeout | undefined;
    const attempt = (): boolean => {
      for (let slot = 0; slot < this.options.processes; slot++) {
        const key = `${base}#${slot}`;
        if (this.busy.has(key)) continue;
        this.busy.add(key);
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
          sink.response(errorResponse(message.id, SERVER_UNAVAILABLE, (err as Error).message));
        }
        return true;
      }
      return false;
    };
    if (!attempt()) {
      const waiter = (): void => {
        if (gaveUp) return;
        if (attempt()) clearTimeout(timer);
        else this.queue(base, waiter);
      };
      this.queue(base, waiter);
      timer = setTimeout(() => {
        gaveUp = true;
        sink.response(errorResponse(message.id, SERVER_UNAVAILABLE,
          `Server "${server.name}": all ${this.options.processes} processes that serve calls able to receive server requests (sampling, elicitation, roots) stayed busy for ${this.options.waitMs} ms: retry shortly`));
      }, this.options.waitMs);
      timer.unref();
    }
    return (reason) => {
      if (cancel) cancel(reason);
      else {
        gaveUp = true;
        clearTimeout(timer);
      }
    };
  }

  private queue(base: string, waiter: () => void): void {
    const list = this.waiters.get(base) ?? [];
    list.push(waiter);
    this.waiters.set(base, list);
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
  if (sink.takeServerRequest) wrapped.takeServerRequest = (message, answer) => sink.takeServerRequest!(message, answer);
  if (sink.canAnswer) wrapped.canAnswer = (message) => sink.canAnswer!(message);
  return wrapped;
}
