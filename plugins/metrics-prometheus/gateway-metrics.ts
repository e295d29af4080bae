import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EventBus, Logger, RequestContext, ServerCatalog } from '../../core/index.js';

type PromClient = typeof import('prom-client');

export interface GatewayMetricsSettings {
  readonly defaultMetrics: boolean;
  readonly callBuckets?: number[];
  /** the pending-state store's size at scrape time, or undefined without a store */
  readonly pendingLogins: () => Promise<number> | undefined;
  readonly log: Logger;
}

/** Call latency buckets, seconds: a call through the gateway takes from a fraction of a millisecond to a minute. */
export const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The value of the `package` label for a name that is not a configured server. */
const UNKNOWN = '(unknown)';
/** … and for requests that name no package (/health, /metrics, unmatched paths). */
const NONE = '(none)';
const UNMATCHED = '(unmatched)';
const METHODS = new Set(['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS']);
const SHOWN_LOGIN_OUTCOMES = ['success', 'bad_state', 'provider_error'];

/** The gateway's metrics in one prom-client registry, fed by kernel events and the onResponse hook. */
export class GatewayMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'package' | 'route' | 'method' | 'status'>;
  private readonly callDuration: Histogram<'package' | 'outcome'>;
  private readonly processes: Gauge<'package'>;
  private readonly starts: Counter<'package'>;
  private readonly crashes: Counter<'package'>;
  private readonly streams: Gauge;
  private readonly logins: Counter<'package' | 'outcome'>;
  private readonly rejected: Counter<'package'>;
  private readonly forwarded: Counter<'package' | 'outcome'>;

  constructor(client: PromClient, private readonly servers: ServerCatalog, settings: GatewayMetricsSettings) {
    const registry = new client.Registry();
    this.registry = registry;
    if (settings.defaultMetrics) client.collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.requests = new client.Counter({
      name: 'fluidmcp_http_requests_total',
      help: 'HTTP requests answered, by package, route pattern, method and status',
      labelNames: ['package', 'route', 'method', 'status'],
      registers,
    });
    this.callDuration = new client.Histogram({
      name: 'fluidmcp_call_duration_seconds',
      help: 'Time from sending a call to a server to its answer, by package and outcome (ok, or error for JSON-RPC errors, timeouts and failures)',
      labelNames: ['package', 'outcome'],
      buckets: settings.callBuckets ?? CALL_BUCKETS,
      registers,
    });
    this.processes = new client.Gauge({
      name: 'fluidmcp_server_processes',
      help: 'Server processes (or remote connections) up, by package',
      labelNames: ['package'],
      registers,
    });
    this.starts = new client.Counter({
      name: 'fluidmcp_server_starts_total',
      help: 'Server processes (or remote connections) that came up, restarts included, by package',
      labelNames: ['package'],
      registers,
    });
    this.crashes = new client.Counter({
      name: 'fluidmcp_server_crashes_total',
      help: 'Server processes (or remote connections) that went down without the gateway asking, by package',
      labelNames: ['package'],
      registers,
    });
    this.streams = new client.Gauge({
      name: 'fluidmcp_sse_streams_open',
      help: 'Event streams open toward clients',
      registers,
    });
    this.logins = new client.Counter({
      name: 'fluidmcp_login_outcomes_total',
      help: 'Login callbacks by package and outcome (success, bad_state, provider_error, bad_request, store_unavailable)',
      labelNames: ['package', 'outcome'],
      registers,
    });
    this.rejected = new client.Counter({
      name: 'fluidmcp_auth_rejected_total',
      help: 'Requests refused with 401 for an invalid credential (a made-up, expired or revoked token), by package: nothing was served or started for them',
      labelNames: ['package'],
      registers,
    });
    this.forwarded = new client.Counter({
      name: 'fluidmcp_replica_forwards_total',
      help: 'Requests continuing a call another replica holds (MRTR retries), by package and outcome: forwarded to it, holder_gone, failed',
      labelNames: ['package', 'outcome'],
      registers,
    });
    const { pendingLogins, log } = settings;
    new client.Gauge({
      name: 'fluidmcp_pending_logins',
      help: 'Logins started and not yet called back (in the shared store: across all replicas); NaN when the store cannot be read',
      registers,
      async collect() {
        const size = pendingLogins();
        if (size === undefined) return;
        try {
          this.set(await size);
        } catch (err) {
          log.warn({ error: (err as Error).message }, 'could not count pending logins for /metrics');
          this.set(Number.NaN);
        }
      },
    });
  }

  /** Every series of every configured package present, at zero unless already counted, so rates and alerts work before the first event. */
  zero(): void {
    for (const server of this.servers.list()) {
      const pkg = { package: server.name };
      this.processes.inc(pkg, 0);
      this.starts.inc(pkg, 0);
      this.crashes.inc(pkg, 0);
      this.callDuration.zero({ ...pkg, outcome: 'ok' });
      this.callDuration.zero({ ...pkg, outcome: 'error' });
      if (server.entry.auth) for (const outcome of SHOWN_LOGIN_OUTCOMES) this.logins.inc({ ...pkg, outcome }, 0);
      if (server.entry.auth) this.rejected.inc(pkg, 0);
    }
    this.streams.inc(0);
  }

  listen(events: EventBus): void {
    events.on('upstream.started', (e) => {
      const pkg = { package: this.packageOf(e.server) };
      this.starts.inc(pkg);
      this.processes.inc(pkg);
    });
    events.on('upstream.crashed', (e) => {
      const pkg = { package: this.packageOf(e.server) };
      this.crashes.inc(pkg);
      if (e.wasUp) this.processes.dec(pkg);
    });
    events.on('upstream.stopped', (e) => {
      if (e.wasUp) this.processes.dec({ package: this.packageOf(e.server) });
    });
    events.on('call.completed', (e) => {
      this.callDuration.observe({ package: this.packageOf(e.server), outcome: e.ok ? 'ok' : 'error' }, e.ms / 1000);
    });
    events.on('login.outcome', (e) => {
      this.logins.inc({ package: this.packageOf(e.server), outcome: e.outcome });
    });
    events.on('auth.rejected', (e) => this.rejected.inc({ package: this.packageOf(e.server) }));
    events.on('replica.forwarded', (e) => this.forwarded.inc({ package: this.packageOf(e.server), outcome: e.outcome }));
    events.on('stream.opened', () => this.streams.inc());
    events.on('stream.closed', () => this.streams.dec());
  }

  /** onResponse: one request, labelled by what the gateway knows, never by what the client typed. */
  request(ctx: RequestContext): void {
    const name = ctx.params.name;
    this.requests.inc({
      package: name === undefined ? NONE : this.packageOf(name),
      route: ctx.route ?? UNMATCHED,
      method: METHODS.has(ctx.method) ? ctx.method : 'other',
      status: String(ctx.res.statusCode),
    });
  }

  private packageOf(name: string): string {
    return this.servers.get(name) ? name : UNKNOWN;
  }
}
