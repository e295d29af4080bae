import type { JsonObject, Logger, UpstreamStatus } from '../../core/index.js';
import {
  errorResponse,
  INVALID_REQUEST,
  isNestedTooDeeply,
  isObject,
  LATEST_VERSION,
  NESTED_TOO_DEEPLY,
  REQUEST_TIMEOUT,
  SERVER_UNAVAILABLE,
} from './jsonrpc.js';
import type { CallSink, SessionLike } from './call-sink.js';
import { toLegacyResult } from './modern-era.js';
import { ServerInitiated } from './server-initiated.js';
import { SilenceWatch } from './silence-watch.js';
import type { InstanceOptions, InstanceState, PendingCall } from './instance-options.js';

export type { InstanceOptions, InstanceState } from './instance-options.js';

/** a handshake that timed out or was refused is tried again after this long, doubling up to the cap */
const HANDSHAKE_RETRY_BASE_MS = 1000;
const HANDSHAKE_RETRY_MAX_MS = 60_000;

const formatMs = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`);

/**
 * One server process (or remote connection) and the calls in flight to it. Ids are rewritten to the
 * instance's own counter on the way in and restored on the way out, so clients that reuse ids never
 * see each other's answers. Progress tokens are rewritten the same way.
 */
export class ServerInstance {
  state: InstanceState = 'starting';
  lastUsed = Date.now();
  /** when the transport gave up on this instance */
  failedAt = 0;
  /** the server's answer to the gateway's own initialize */
  initResult: JsonObject | undefined;
  serverVersion: string = LATEST_VERSION;
  /** the log level the server was last asked for on behalf of its sessions */
  logLevel: string | undefined;
  /** when the upstream last came up (ms since the epoch), while it is up */
  upSince: number | undefined;

  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  /** what the server sends on its own: its requests to clients, its notifications */
  private readonly initiated: ServerInitiated;
  private queue: (() => void)[] = [];
  /** the ids of this run's initialize requests: a slow server's answer to an earlier one still counts */
  private readonly handshakeIds = new Set<number>();
  private handshakeTimer: NodeJS.Timeout | undefined;
  /** handshakes in a row that timed out or were refused; the next waits longer */
  private handshakeFailures = 0;
  private handshakeRetryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private settleWaiters: (() => void)[] = [];
  /** the upstream reported up and has not gone down since */
  private alive = false;
  /** the transport said it would try again after its last failure */
  private willRetry = false;
  private readonly silence = new SilenceWatch();
  /** start()'s promise has not settled: its caller reports a failure (the pool logs it once) */
  private startPending = false;

  constructor(private readonly options: InstanceOptions) {
    this.initiated = new ServerInitiated({
      name: options.name,
      log: options.log,
      pending: this.pending,
      sessions: options.sessions,
      broadcast: options.broadcast,
      send: (message) => this.sendQuietly(message),
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** The transport's status, with the state as callers see it: `starting` until the handshake is done. */
  status(): UpstreamStatus & { inFlight: number; ready: boolean } {
    const s = this.options.upstream.status;
    let state = s.state;
    if (this.state === 'failed' || this.state === 'stopped') state = this.state;
    else if (this.state !== 'ready' && s.state === 'up') state = 'starting';
    // ready: the handshake is done and the upstream takes calls (a fail-closed group may refuse them while up)
    return { ...s, state, lastError: this.latestError(), inFlight: this.pending.size, ready: this.state === 'ready' && s.state === 'up' };
  }

  /** Failed, and its transport keeps trying: it comes back by itself, so it is kept rather than replaced. */
  get recovering(): boolean {
    return this.state === 'failed' && this.willRetry;
  }

  start(): Promise<void> {
    const done = this.whenReady();
    this.startPending = true;
    done.then(() => (this.startPending = false), () => (this.startPending = false));
    this.options.upstream
      .start({
        message: (m) => this.onServerMessage(m),
        up: () => this.onUp(),
        down: (err, willRetry) => this.onDown(err, willRetry),
      })
      .catch((err: Error) => this.onDown(err, false));
    return done;
  }

  /** Resolves once the handshake is done; rejects if the server fails for good. */
  whenReady(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    if (this.state === 'failed' || this.state === 'stopped') return Promise.reject(new Error(this.unavailableReason()));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Resolves at the first outcome: ready, or the first failure (the transport may still retry). */
  whenSettled(): Promise<void> {
    if (this.state !== 'starting') return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  private settled(): void {
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  /** Stops it for good; `why` is the error its calls in flight get. */
  async stop(why = 'the gateway is stopping this server'): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.options.events?.emit('upstream.stopped', { server: this.options.name, wasUp: this.alive });
    this.alive = false;
    this.upSince = undefined;
    this.failAll(why);
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.handshakeRetryTimer);
    clearInterval(this.sweepTimer);
    await this.options.upstream.stop();
  }

  /** Sends a client request; its response and related messages go to `sink`. */
  call(message: JsonObject, sink: CallSink): number {
    this.lastUsed = Date.now();
    const id = this.nextId++;
    const clientId = message.id;
    let progressToken: unknown;
    const params = message.params;
    if (isObject(params) && isObject(params._meta) && params._meta.progressToken !== undefined) {
      progressToken = params._meta.progressToken;
      params._meta.progressToken = id;
    }
    message.id = id;
    const events = this.options.events;
    const started = events !== undefined && events.listening('call.completed') ? performance.now() : -1;
    this.pending.set(id, { sent: false, clientId, sink, deadline: Date.now() + this.callWaitMs, progressToken, started, heard: this.silence.heard });
    this.ensureSweep();
    if (this.state === 'ready') this.write(message, id);
    else this.enqueue(() => this.write(message, id), id);
    return id;
  }

  /** The client gave up on a call (disconnect, cancel): forget it and tell the server. */
  cancel(id: number, reason: string): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    if (this.state === 'ready') this.sendQuietly({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason } });
    call.sink.cancelled?.(call.clientId, reason);
  }

  /** Finds the instance id of a session's call by the client's id (for notifications/cancelled). */
  findCall(session: SessionLike | undefined, clientId: unknown): number | undefined {
    for (const [id, call] of this.pending) if (call.sink.session === session && call.clientId === clientId) return id;
    return undefined;
  }

  /** Forwards a client notification that the server should see. */
  notify(message: JsonObject): void {
    this.lastUsed = Date.now();
    if (this.state === 'ready') this.sendQuietly(message);
    else this.enqueue(() => this.sendQuietly(message));
  }

  /** A client's answer to a server request: restores the server's id. False when the request is unknown. */
  answer(gatewayId: unknown, message: JsonObject, session: SessionLike): boolean {
    return this.initiated.answer(gatewayId, message, session);
  }

  /** A session ended: answer the server requests it still held, and cancel its calls. */
  dropSession(session: SessionLike): void {
    this.initiated.dropSession(session);
    for (const [id, call] of this.pending) if (call.sink.session === session) this.cancel(id, 'client session ended');
  }

  private write(message: JsonObject, id: number): void {
    const call = this.pending.get(id);
    if (!call) return; // cancelled while queued
    call.sent = true;
    try {
      this.options.upstream.send(message);
    } catch (err) {
      const deep = isNestedTooDeeply(err);
      this.settle(id, (clientId) => (deep ? errorResponse(clientId, INVALID_REQUEST, NESTED_TOO_DEEPLY) : errorResponse(clientId, SERVER_UNAVAILABLE, (err as Error).message)), deep ? 400 : undefined);
    }
  }

  private sendQuietly(message: JsonObject): void {
    try {
      this.options.upstream.send(message);
    } catch (err) {
      this.options.log.debug({ error: (err as Error).message }, 'could not forward a message: server not up');
    }
  }

  private enqueue(fn: () => void, id?: number): void {
    if (this.state === 'failed' || this.state === 'stopped') {
      if (id !== undefined) this.settle(id, (clientId) => errorResponse(clientId, SERVER_UNAVAILABLE, this.unavailableReason()));
      return;
    }
    if (this.queue.length >= this.options.maxQueued) {
      if (id !== undefined) this.settle(id, (clientId) => errorResponse(clientId, SERVER_UNAVAILABLE, `Server "${this.options.name}" is starting and ${this.queue.length} calls already wait for it: try again shortly`));
      return;
    }
    this.queue.push(fn);
  }

  private unavailableReason(): string {
    if (this.state === 'stopped') return `Server "${this.options.name}" was stopped`;
    const why = this.latestError() ?? 'it is not running';
    // transports already say which server in their errors
    return why.startsWith(`Server "${this.options.name}"`) ? why : `Server "${this.options.name}" is unavailable: ${why}`;
  }

  /** a failed handshake is newer news than what the transport last said */
  private latestError(): string | undefined {
    return this.handshakeFailures > 0 ? this.lastError : (this.options.upstream.status.lastError ?? this.lastError);
  }

  private onUp(): void {
    if (!this.alive && this.state !== 'stopped') {
      this.alive = true;
      this.upSince = Date.now();
      this.options.events?.emit('upstream.started', { server: this.options.name });
    }
    this.handshake();
  }

  private completed(call: PendingCall, ok: boolean): void {
    this.options.events!.emit('call.completed', { server: this.options.name, ms: performance.now() - call.started, ok });
  }

  private handshake(): void {
    if (this.state === 'stopped') return;
    // a failed server being retried stays failed (calls fail at once) until it answers
    if (this.state !== 'failed') this.state = 'starting';
    const id = this.nextId++;
    this.handshakeIds.add(id);
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.handshakeRetryTimer);
    this.handshakeTimer = setTimeout(() => {
      this.handshakeFailed(`did not answer the gateway's initialize within ${this.options.handshakeTimeoutMs} ms`, 'check that it is an MCP server and that it starts within handshakeTimeoutMs');
    }, this.options.handshakeTimeoutMs);
    this.sendQuietly({
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: {
        protocolVersion: LATEST_VERSION,
        capabilities: this.options.clientCapabilities,
        clientInfo: this.options.clientInfo,
      },
    });
  }

  /**
   * The server did not complete the handshake (no answer in time, or an error): it counts as failed
   * (calls fail at once, /health says so) and the handshake is tried again with backoff until it succeeds.
   */
  private handshakeFailed(what: string, advice: string): void {
    clearTimeout(this.handshakeTimer);
    if (this.state === 'stopped') return;
    this.handshakeFailures++;
    const wait = Math.min(HANDSHAKE_RETRY_MAX_MS, HANDSHAKE_RETRY_BASE_MS * 2 ** (this.handshakeFailures - 1));
    this.lastError = `Server "${this.options.name}" ${what}; trying again in ${formatMs(wait)} (${advice})`;
    this.options.log[this.startPending ? 'debug' : 'error']({ server: this.options.name, failures: this.handshakeFailures, inMs: wait }, this.lastError);
    if (this.state !== 'failed') this.failedAt = Date.now();
    this.state = 'failed';
    this.willRetry = true;
    this.failAll(this.lastError);
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(new Error(this.lastError));
    this.settled();
    this.handshakeRetryTimer = setTimeout(() => {
      if (this.state === 'failed' && this.alive) this.handshake();
    }, wait);
    this.handshakeRetryTimer.unref();
  }

  /**
   * The innermost cause when a refusal is this server's own failure message (a gateway answering for a
   * server of the same name, such as this one through a url that leads back to it): said once, not nested.
   */
  private ownFailure(error: string): string | undefined {
    const own = `Server "${this.options.name}" `;
    if (!error.startsWith(own)) return undefined;
    let inner = error;
    while (inner.startsWith(own)) {
      inner = inner.slice(own.length).replace(/; trying again in .*$/s, '');
      if (inner.startsWith('refused initialize: ')) inner = inner.slice('refused initialize: '.length);
      if (inner.startsWith('what answers it is a server named')) return inner.replace(/^.*? is unavailable itself \((.*)\); if its url .*$/s, '$1');
    }
    return inner;
  }

  private onHandshakeAnswer(message: JsonObject): void {
    clearTimeout(this.handshakeTimer);
    if (!isObject(message.result)) {
      const error = isObject(message.error) ? String(message.error.message) : 'no result';
      // only the latest attempt's refusal counts: an earlier one was already timed out
      if (message.id !== [...this.handshakeIds].at(-1)) return;
      this.handshakeIds.clear();
      const loop = this.ownFailure(error);
      if (loop !== undefined) {
        this.handshakeFailed(
          `refused initialize: what answers it is a server named "${this.options.name}" that is unavailable itself (${loop}); if its url points back at this gateway's /${this.options.name}/mcp, it can never start`,
          'point its url at an MCP server',
        );
      } else {
        this.handshakeFailed(`refused initialize: ${error}`, 'check its url or command and that it is an MCP server');
      }
      return;
    }
    this.handshakeIds.clear();
    clearTimeout(this.handshakeRetryTimer);
    this.handshakeFailures = 0;
    this.initResult = message.result;
    if (typeof message.result.protocolVersion === 'string') this.serverVersion = message.result.protocolVersion;
    this.sendQuietly({ jsonrpc: '2.0', method: 'notifications/initialized' });
    this.state = 'ready';
    this.lastError = undefined;
    this.options.onReady?.();
    this.options.events?.emit('upstream.ready', { server: this.options.name });
    const queue = this.queue;
    this.queue = [];
    for (const fn of queue) fn();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve();
    this.settled();
  }

  private onDown(err: Error, willRetry: boolean): void {
    if (this.state === 'stopped') return;
    this.options.events?.emit('upstream.crashed', { server: this.options.name, wasUp: this.alive, willRetry });
    this.alive = false;
    this.logLevel = undefined; // a restarted server starts from its defaults
    this.upSince = undefined;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.handshakeRetryTimer);
    this.handshakeIds.clear();
    this.lastError = err.message;
    // the transport may keep retrying a server it counts as failed (or that never finished a handshake): calls then fail at once meanwhile
    const failed = !willRetry || this.options.upstream.status.state === 'failed' || this.handshakeFailures > 0;
    this.willRetry = willRetry;
    if (failed && this.state !== 'failed') this.failedAt = Date.now();
    this.state = failed ? 'failed' : 'down';
    const what = err.message.startsWith(`Server "${this.options.name}"`) ? err.message : `Server "${this.options.name}" stopped: ${err.message}`;
    this.failAll(failed ? what : `${what}; it is restarting, retry the call`);
    this.initiated.clear();
    this.settled();
    if (failed) {
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w.reject(new Error(this.unavailableReason()));
    }
  }

  /** Fails every call in flight and every queued one at once. */
  failAll(message: string): void {
    const calls = [...this.pending.keys()];
    for (const id of calls) this.settle(id, (clientId) => errorResponse(clientId, SERVER_UNAVAILABLE, message));
    // queued calls were in pending too; the rest of the queue is notifications
    this.queue = [];
  }

  /** Ends a call with the gateway's answer; `refusedStatus`: it never reached the server, answer with this HTTP status where the sink can. */
  private settle(id: number, make: (clientId: unknown) => JsonObject, refusedStatus?: number): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    if (call.started >= 0) this.completed(call, false);
    if (refusedStatus !== undefined && call.sink.refused) call.sink.refused(make(call.clientId), refusedStatus, {});
    else deliver(call.sink, make(call.clientId), this.options.log);
  }

  private onServerMessage(message: JsonObject): void {
    this.silence.heard++;
    const id = message.id;
    if (typeof message.method === 'string') {
      if (id === undefined) this.initiated.notification(message);
      else this.initiated.request(message);
      return;
    }
    if (typeof id !== 'number') {
      this.options.log.debug({ server: this.options.name }, 'dropped a response with an id the gateway never sent');
      return;
    }
    if (this.handshakeIds.has(id)) {
      this.onHandshakeAnswer(message);
      return;
    }
    const call = this.pending.get(id);
    if (!call) return; // timed out or cancelled: nobody waits for it
    this.pending.delete(id);
    if (call.started >= 0) this.completed(call, message.error === undefined);
    message.id = call.clientId;
    if (!call.sink.modern) toLegacyResult(message);
    deliver(call.sink, message, this.options.log);
  }

  /** how often expired calls are looked for */
  private get sweepEveryMs(): number {
    return Math.max(20, Math.min(1000, Math.floor(this.options.callTimeoutMs / 4)));
  }

  /**
   * How long a call waits: the call timeout, and for an upstream that relays calls (a group) a sweep and a
   * second more, so the relayed server's own timeout answers (naming it, counting toward its hang restart).
   */
  private get callWaitMs(): number {
    return this.options.callTimeoutMs + (this.options.upstream.relaysCalls ? this.sweepEveryMs + 1000 : 0);
  }

  private ensureSweep(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepEveryMs);
    this.sweepTimer.unref();
  }

  /** Calls share one timeout and are kept in send order, so the expired ones are at the front. */
  private sweep(): void {
    const now = Date.now();
    for (const [id, call] of this.pending) {
      if (call.deadline > now) break;
      if (!call.sent) {
        this.settle(id, (clientId) =>
          errorResponse(clientId, SERVER_UNAVAILABLE, `Server "${this.options.name}" is still starting (it has not answered the gateway's initialize yet); the call waited ${this.options.callTimeoutMs} ms for it: retry once GET /health shows it ready`),
        );
        continue;
      }
      // the transport's down answers this call and every other in flight, saying why
      if (this.silence.timedOut(call.heard) && this.restartHung()) break;
      const why = this.initiated.timedOut(call.sink.session, this.callWaitMs);
      this.settle(id, (clientId) => errorResponse(clientId, REQUEST_TIMEOUT, why));
      if (this.state === 'ready') this.sendQuietly({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'timed out at the gateway' } });
    }
    if (this.pending.size === 0) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
  }

  /** Asks the transport to restart a hung server; false when it cannot (the calls then time out as usual). */
  private restartHung(): boolean {
    const upstream = this.options.upstream;
    if (this.state !== 'ready' || !upstream.restart) return false;
    const reason = this.silence.verdict(this.options.callTimeoutMs);
    this.options.log.warn({ server: this.options.name, callTimeoutMs: this.options.callTimeoutMs }, `server ${reason}: restarting it`);
    upstream.restart(reason);
    return this.state !== 'ready';
  }
}

function deliver(sink: CallSink, message: JsonObject, log: Logger): void {
  try {
    sink.response(message);
  } catch (err) {
    log.warn({ error: (err as Error).message }, 'could not deliver a response to its client');
  }
}

