import { ProcessSampler, type ProcessUsage } from './procfs.js';
import { within, type ClientKind, type RunningTarget, type Session, type SessionOptions } from './targets.js';

/** steady = the legacy client (a); modern = 2026-07-28 stateless calls (e); group = echo through a group and through its member (f) */
export type WorkloadName = 'steady' | 'churn' | 'streaming' | 'auth' | 'modern' | 'group';

/** One row of a result table. */
export interface Measurement {
  workload: WorkloadName;
  target: string;
  clients: number;
  /** the kind of HTTP client (`-` for the direct target, which has no HTTP) */
  client: ClientKind | '-';
  /** 1-based round of an interleaved run */
  round: number;
  /** `ok`: measured; `failed`: the target could not serve; `n/a` or `skipped`: not measured, see reason */
  status: 'ok' | 'failed' | 'n/a' | 'skipped';
  reason?: string;
  /** calls (steady, auth), sessions (churn) or streams (streaming) that completed correctly */
  ok: number;
  errors: number;
  /** the measured window, s */
  seconds: number;
  /** ok per second of the window */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** time to open every session before the window, s */
  setupSeconds: number;
  /** up to five distinct error messages with their counts */
  errorSamples: { message: string; count: number }[];
  usage?: ProcessUsage;
  /** CPU used by the load driver during the window, percent of one core */
  driverCpuPct: number;
}

export interface LoadOptions {
  durationMs: number;
  /** how long calls in flight at the end of the window may take before they count as errors */
  graceMs: number;
  /** bound on opening all sessions before the window */
  setupTimeoutMs: number;
}

interface Drive {
  ok: number;
  errors: number;
  seconds: number;
  latencies: number[];
  samples: Map<string, number>;
  driverCpuPct: number;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

function noteError(samples: Map<string, number>, err: unknown): void {
  const message = (err instanceof Error ? err.message : String(err)).slice(0, 200);
  const count = samples.get(message);
  if (count !== undefined) samples.set(message, count + 1);
  else if (samples.size < 5) samples.set(message, 1);
  else samples.set('(other errors)', (samples.get('(other errors)') ?? 0) + 1);
}

/**
 * Runs `clients` loops of `step` for the window; a step that throws counts as an error. Calls still in
 * flight after the window plus the grace are cut off through `abort` and count as errors.
 */
async function drive(clients: number, options: LoadOptions, step: (client: number, seq: number) => Promise<void>, abort: (reason: string) => void): Promise<Drive> {
  let stop = false;
  let ok = 0;
  let errors = 0;
  const latencies: number[] = [];
  const samples = new Map<string, number>();
  const timer = setTimeout(() => (stop = true), options.durationMs);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const loop = async (client: number): Promise<void> => {
    let seq = 0;
    while (!stop) {
      const t = process.hrtime.bigint();
      try {
        await step(client, seq++);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        ok++;
      } catch (err) {
        errors++;
        noteError(samples, err);
        if (ok === 0 && errors > 5000) stop = true;
        // a step that fails without I/O must not starve the timer that ends the window
        await yieldToLoop();
      }
    }
  };
  const all = Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
  const reason = `no answer within ${(options.graceMs / 1000).toFixed(0)} s after the window ended`;
  await within(all, options.durationMs + options.graceMs, 'load').catch(() => abort(reason));
  await within(all, 5000, 'load after abort').catch(() => undefined);
  clearTimeout(timer);
  stop = true;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { ok, errors, seconds, latencies, samples, driverCpuPct: (100 * (cpu.user + cpu.system)) / 1e6 / seconds };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function toMeasurement(workload: WorkloadName, target: string, clients: number, client: ClientKind | '-', d: Drive, setupSeconds: number, setupErrors: number, usage: ProcessUsage | undefined): Measurement {
  const sorted = Float64Array.from(d.latencies).sort();
  const errors = d.errors + setupErrors;
  return {
    workload,
    target,
    clients,
    client,
    round: 0,
    status: d.ok > 0 ? 'ok' : 'failed',
    reason: d.ok > 0 ? undefined : `no correct answer: ${[...d.samples.keys()][0] ?? 'nothing completed'}`,
    ok: d.ok,
    errors,
    seconds: d.seconds,
    rate: d.ok / d.seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    setupSeconds,
    errorSamples: [...d.samples].map(([message, count]) => ({ message, count })),
    usage,
    driverCpuPct: d.driverCpuPct,
  };
}

/** A row for a target that was not measured. */
export function notMeasured(workload: WorkloadName, target: string, clients: number, status: 'failed' | 'n/a' | 'skipped', reason: string, client: ClientKind | '-' = '-'): Measurement {
  return { workload, target, clients, client, round: 0, status, reason, ok: 0, errors: 0, seconds: 0, rate: 0, p50Ms: NaN, p99Ms: NaN, setupSeconds: 0, errorSamples: [], driverCpuPct: 0 };
}

/** Opens `clients` sessions in parallel within the setup bound; the ones that failed are reported. */
async function openSessions(target: RunningTarget, clients: number, options: LoadOptions, tokens: string[] | undefined, warmCall: boolean, samples: Map<string, number>, client: ClientKind, how: SessionOptions = {}): Promise<{ live: Session[]; failed: number; all: Session[] }> {
  const all = Array.from({ length: clients }, (_, i) => target.session({ ...how, token: tokens?.[i % tokens.length], client }));
  const results = await Promise.allSettled(
    all.map((s, i) => within((async () => {
      await s.open();
      if (warmCall) await s.echo(`warm-${i}`);
    })(), options.setupTimeoutMs, `${target.name}: opening session ${i + 1} of ${clients}`)),
  );
  const live: Session[] = [];
  let failed = 0;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') live.push(all[i]!);
    else {
      failed++;
      noteError(samples, r.reason);
      all[i]!.destroy();
    }
  });
  return { live, failed, all };
}

async function closeSessions(sessions: Session[]): Promise<void> {
  await Promise.allSettled(sessions.map((s) => within(s.close(), 5000, 'DELETE')));
  for (const s of sessions) s.destroy();
}

/** How the clients of a steady loop reach the target (besides the client kind). */
export interface SteadyOptions {
  /** Bearer tokens, dealt out to the clients in turn; each client makes one call before the window */
  tokens?: string[];
  era?: SessionOptions['era'];
  endpoint?: SessionOptions['endpoint'];
}

/**
 * (a), (d), (e) and (f): each client opens a session (a modern client opens none), then calls `echo` in
 * a loop with a unique message per call; every answer must carry its request's id and echo its own message.
 */
export async function measureSteady(workload: 'steady' | 'auth' | 'modern' | 'group', target: RunningTarget, label: string, clients: number, options: LoadOptions, client: ClientKind, how: SteadyOptions = {}): Promise<Measurement> {
  const { tokens } = how;
  const kind = target.hasHttp ? client : '-';
  const sampler = new ProcessSampler(target.pid);
  const setupSamples = new Map<string, number>();
  const t0 = process.hrtime.bigint();
  const { live, failed, all } = await openSessions(target, clients, options, tokens, tokens !== undefined, setupSamples, client, { era: how.era, endpoint: how.endpoint });
  const setupSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (live.length === 0) {
    sampler.stop();
    for (const s of all) s.destroy();
    return notMeasured(workload, label, clients, 'failed', `no session opened: ${[...setupSamples.keys()][0] ?? 'unknown'}`, kind);
  }
  sampler.resetCpu();
  const d = await drive(live.length, options, (client, seq) => live[client]!.echo(`c${client}-${seq}`), (reason) => live.forEach((s) => s.destroy(reason)));
  const usage = sampler.stop();
  await closeSessions(all);
  for (const [m, c] of setupSamples) d.samples.set(m, (d.samples.get(m) ?? 0) + c);
  return toMeasurement(workload, label, clients, kind, d, setupSeconds, failed, usage);
}

/** (b): each client loops over short sessions: initialize, one echo, DELETE; the rate is sessions/s. */
export async function measureChurn(target: RunningTarget, clients: number, options: LoadOptions, kind: ClientKind): Promise<Measurement> {
  const sampler = new ProcessSampler(target.pid);
  const inFlight = new Set<Session>();
  const d = await drive(
    clients,
    options,
    async (client, seq) => {
      const s = target.session({ client: kind });
      inFlight.add(s);
      let opened = false;
      try {
        await s.open();
        opened = true;
        await s.echo(`s${client}-${seq}`);
        await s.close();
        opened = false;
      } finally {
        if (opened) await within(s.close(), 2000, 'DELETE').catch(() => undefined);
        s.destroy();
        inFlight.delete(s);
      }
    },
    (reason) => inFlight.forEach((s) => s.destroy(reason)),
  );
  return toMeasurement('churn', target.name, clients, kind, d, 0, 0, sampler.stop());
}

/** (c): each client loops over streamed calls with progress; the rate is completed streams/s. */
export async function measureStreaming(target: RunningTarget, clients: number, options: LoadOptions, client: ClientKind): Promise<Measurement> {
  const kind = target.hasHttp ? client : '-';
  const sampler = new ProcessSampler(target.pid);
  const setupSamples = new Map<string, number>();
  const t0 = process.hrtime.bigint();
  const { live, failed, all } = await openSessions(target, clients, options, undefined, false, setupSamples, client);
  const setupSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (live.length === 0) {
    sampler.stop();
    return notMeasured('streaming', target.name, clients, 'failed', `no session opened: ${[...setupSamples.keys()][0] ?? 'unknown'}`, kind);
  }
  sampler.resetCpu();
  const d = await drive(live.length, options, (client, seq) => live[client]!.stream(`p${client}-${seq}`), (reason) => live.forEach((s) => s.destroy(reason)));
  const usage = sampler.stop();
  await closeSessions(all);
  return toMeasurement('streaming', target.name, clients, kind, d, setupSeconds, failed, usage);
}

/** A short unrecorded run so that every target is measured warm (JIT, pools, first process). */
export async function warmUp(target: RunningTarget, ms: number, client: ClientKind = 'raw', how: SteadyOptions = {}): Promise<void> {
  await measureSteady('steady', target, target.name, 8, { durationMs: ms, graceMs: 5000, setupTimeoutMs: 30_000 }, client, how);
}
