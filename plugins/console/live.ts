import type { ServerResponse } from 'node:http';
import type { EventBus, RequestContext } from '../../core/index.js';

const TAIL_LINES = 500;
const PING_MS = 15_000;
const ACTIVITY_MS = 1000;

interface Window {
  calls: number;
  errors: number;
  totalMs: number;
  maxMs: number;
}

/** An open event stream toward a console. */
class Feed {
  constructor(readonly res: ServerResponse) {}
  /** a string is sent as is (log lines are JSON already, one line each) */
  send(event: string, data: unknown): void {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    if (!this.res.writableEnded) this.res.write(`event: ${event}\ndata: ${text}\n\n`);
  }
}

/**
 * GET /api/events and GET /api/logs: server-sent events fed by the kernel's event bus. Server states are
 * pushed as they change; calls are summed into one `activity` event a second while there are calls.
 */
export class LiveFeeds {
  private readonly events = new Set<Feed>();
  private readonly logs = new Set<Feed>();
  private readonly tail: string[] = [];
  private readonly pendingServers = new Set<string>();
  private window = new Map<string, Window>();
  private readonly off: (() => void)[] = [];
  private offCalls: (() => void) | undefined;
  private activityTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private flushScheduled = false;

  constructor(
    private readonly bus: EventBus,
    private readonly summaries: () => unknown[],
    private readonly summary: (server: string) => unknown,
  ) {}

  start(): void {
    for (const name of ['upstream.started', 'upstream.ready', 'upstream.crashed', 'upstream.stopped', 'server.changed'] as const) {
      this.off.push(this.bus.on(name, (e) => this.serverChanged(e.server)));
    }
    this.off.push(this.bus.on('log.line', (e) => this.logLine(e.line)));
    // below debug level the log leaves servers' stderr out: the tail shows it in the log's own shape
    this.off.push(this.bus.on('upstream.stderr', (e) =>
      this.logLine(JSON.stringify({ level: 30, time: Date.now(), plugin: 'transport-stdio', upstream: e.label, server: e.server, stderr: e.line, msg: 'server stderr' }))));
    this.pingTimer = setInterval(() => {
      for (const feed of [...this.events, ...this.logs]) if (!feed.res.writableEnded) feed.res.write(': ping\n\n');
    }, PING_MS);
    this.pingTimer.unref();
  }

  stop(): void {
    for (const off of this.off.splice(0)) off();
    this.offCalls?.();
    this.offCalls = undefined;
    clearInterval(this.pingTimer);
    clearInterval(this.activityTimer);
    for (const feed of [...this.events, ...this.logs]) feed.res.end();
    this.events.clear();
    this.logs.clear();
  }

  openEvents(ctx: RequestContext): void {
    const feed = this.open(ctx, this.events);
    feed.send('servers', { servers: this.summaries() });
    // call.completed costs a clock read per call: listen only while someone watches
    if (!this.offCalls) {
      this.offCalls = this.bus.on('call.completed', (e) => this.callCompleted(e.server, e.ms, e.ok));
      this.activityTimer = setInterval(() => this.flushActivity(), ACTIVITY_MS);
      this.activityTimer.unref();
    }
  }

  openLogs(ctx: RequestContext): void {
    const feed = this.open(ctx, this.logs);
    for (const line of this.tail) feed.send('log', line);
  }

  private open(ctx: RequestContext, set: Set<Feed>): Feed {
    const res = ctx.res;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const feed = new Feed(res);
    set.add(feed);
    res.once('close', () => {
      set.delete(feed);
      if (set === this.events && set.size === 0) {
        this.offCalls?.();
        this.offCalls = undefined;
        clearInterval(this.activityTimer);
      }
    });
    return feed;
  }

  private serverChanged(server: string): void {
    if (this.events.size === 0) return;
    // events are emitted mid-change: read the state once the emitter is done
    this.pendingServers.add(server);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const names = [...this.pendingServers];
      this.pendingServers.clear();
      for (const name of names) this.broadcast(this.events, 'server', this.summary(name));
    });
  }

  private callCompleted(server: string, ms: number, ok: boolean): void {
    let w = this.window.get(server);
    if (!w) {
      w = { calls: 0, errors: 0, totalMs: 0, maxMs: 0 };
      this.window.set(server, w);
    }
    w.calls++;
    if (!ok) w.errors++;
    w.totalMs += ms;
    if (ms > w.maxMs) w.maxMs = ms;
  }

  private flushActivity(): void {
    if (this.window.size === 0) return;
    const window = this.window;
    this.window = new Map();
    const servers: Record<string, { calls: number; errors: number; avgMs: number; maxMs: number }> = {};
    for (const [name, w] of window) {
      servers[name] = { calls: w.calls, errors: w.errors, avgMs: round(w.totalMs / w.calls), maxMs: round(w.maxMs) };
    }
    this.broadcast(this.events, 'activity', { t: Date.now(), seconds: ACTIVITY_MS / 1000, servers });
    // sessions and calls in flight change with calls, which have no event of their own
    for (const name of window.keys()) this.broadcast(this.events, 'server', this.summary(name));
  }

  private logLine(line: string): void {
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    this.tail.push(text);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    this.broadcast(this.logs, 'log', text);
  }

  private broadcast(set: Set<Feed>, event: string, data: unknown): void {
    for (const feed of set) feed.send(event, data);
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
