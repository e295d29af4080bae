import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { measureChurn, measureStreaming, measureSteady, notMeasured, warmUp, type LoadOptions, type Measurement, type WorkloadName } from './load.js';
import { formatProfile, newestProfile, summarizeCpuProfile, type ProfileSummary } from './profile.js';
import { formatReport, goals, ratios } from './report.js';
import { ALL_TARGETS, repoRoot, startTarget, type RunningTarget, type TargetName } from './targets.js';

const USAGE = `npm run bench -- [options]

Measures this gateway against the server over stdio directly, mcp-proxy and supergateway,
all on the same upstream (@modelcontextprotocol/server-everything over stdio), in one run.

  --quick              short windows and fewer client counts (about a minute)
  --duration <s>       window of each measurement in seconds (default 4, quick 1.5)
  --only <list>        workloads to run: a,b,c,d or steady,churn,streaming,auth (default all)
  --targets <list>     direct,gateway,mcp-proxy,supergateway (default all)
  --clients <list>     client counts of (a) (default 1,8,32,128; quick 1,32)
  --profile <dir>      run the gateway under node --cpu-prof into <dir> and print its hot functions
  --json               print machine-readable results instead of tables
  --help               this text`;

/** supergateway --stateful starts one server process per session: more would swamp a 2-core machine. */
const SUPERGATEWAY_SESSION_CAP = 32;
const AUTH_TOKENS = 16;

const WORKLOAD_KEYS: Record<string, WorkloadName> = { a: 'steady', b: 'churn', c: 'streaming', d: 'auth', steady: 'steady', churn: 'churn', streaming: 'streaming', auth: 'auth' };

interface Plan {
  workloads: Set<WorkloadName>;
  targets: TargetName[];
  steadyClients: number[];
  churnClients: number[];
  streamClients: number[];
  load: LoadOptions;
  warmMs: number;
  json: boolean;
  profileDir?: string;
}

class UsageError extends Error {}

function list(value: string | undefined, what: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new UsageError(`${what} needs a comma-separated list, got "${value}"`);
  return items;
}

function counts(value: string | undefined): number[] | undefined {
  return list(value, '--clients')?.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new UsageError(`--clients takes whole numbers from 1 to 1024, got "${s}"`);
    return n;
  });
}

function planFrom(argv: string[]): Plan | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      only: { type: 'string' },
      targets: { type: 'string' },
      clients: { type: 'string' },
      profile: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const quick = values.quick === true;
  let durationMs = quick ? 1500 : 4000;
  if (values.duration !== undefined) {
    const s = Number(values.duration);
    if (!Number.isFinite(s) || s <= 0 || s > 120) throw new UsageError(`--duration takes seconds from 0.1 to 120, got "${values.duration}"`);
    durationMs = s * 1000;
  }
  const workloads = new Set<WorkloadName>();
  for (const key of list(values.only, '--only') ?? ['a', 'b', 'c', 'd']) {
    const w = WORKLOAD_KEYS[key.toLowerCase()];
    if (!w) throw new UsageError(`--only knows a, b, c, d (steady, churn, streaming, auth), got "${key}"`);
    workloads.add(w);
  }
  const targets = (list(values.targets, '--targets') ?? ALL_TARGETS).map((t) => {
    if (!ALL_TARGETS.includes(t as TargetName)) throw new UsageError(`--targets knows ${ALL_TARGETS.join(', ')}, got "${t}"`);
    return t as TargetName;
  });
  return {
    workloads,
    targets: ALL_TARGETS.filter((t) => targets.includes(t)),
    steadyClients: counts(values.clients) ?? (quick ? [1, 32] : [1, 8, 32, 128]),
    churnClients: quick ? [8] : [8, 32],
    streamClients: quick ? [8] : [8, 32],
    load: { durationMs, graceMs: 10_000, setupTimeoutMs: 30_000 },
    warmMs: quick ? 500 : 1000,
    json: values.json === true,
    profileDir: values.profile,
  };
}

const progress = (text: string): void => void process.stderr.write(`[bench] ${text}\n`);

function describe(m: Measurement): string {
  if (m.status !== 'ok') return `${m.status}: ${m.reason}`;
  return `${Math.round(m.rate)}/s p50 ${m.p50Ms.toFixed(2)} ms p99 ${m.p99Ms.toFixed(2)} ms, ${m.errors} errors`;
}

const running = new Set<RunningTarget>();

async function withTarget(name: TargetName, options: Parameters<typeof startTarget>[1], fn: (t: RunningTarget) => Promise<void>): Promise<string | undefined> {
  let target: RunningTarget;
  try {
    progress(`starting ${name}${options?.auth ? ' with an auth block' : ''}`);
    target = await startTarget(name, options);
  } catch (err) {
    return (err as Error).message;
  }
  running.add(target);
  try {
    await fn(target);
  } finally {
    progress(`stopping ${name}`);
    await target.stop();
    running.delete(target);
  }
  return undefined;
}

async function measureTarget(name: TargetName, plan: Plan, rows: Measurement[]): Promise<void> {
  const record = (m: Measurement): void => {
    rows.push(m);
    progress(`${m.workload} ${m.target} x${m.clients}: ${describe(m)}`);
  };
  const planned: [WorkloadName, number][] = [];
  if (plan.workloads.has('steady')) for (const c of plan.steadyClients) planned.push(['steady', c]);
  if (plan.workloads.has('churn')) for (const c of plan.churnClients) planned.push(['churn', c]);
  if (plan.workloads.has('streaming')) for (const c of plan.streamClients) planned.push(['streaming', c]);
  if (planned.length === 0) return;
  const failure = await withTarget(name, { profileDir: plan.profileDir }, async (target) => {
    await warmUp(target, plan.warmMs);
    for (const [workload, clients] of planned) {
      const capped = name === 'supergateway' && clients > SUPERGATEWAY_SESSION_CAP;
      if (capped) {
        record(notMeasured(workload, name, clients, 'skipped', `--stateful starts a server process per session; the bench stops at ${SUPERGATEWAY_SESSION_CAP}`));
        continue;
      }
      if (workload === 'steady') {
        progress(`steady ${name} x${clients}`);
        record(await measureSteady('steady', target, name, clients, plan.load));
      } else if (workload === 'churn') {
        if (!target.hasSessions) {
          record(notMeasured('churn', name, clients, 'n/a', 'stdio has one session per process: nothing to open or DELETE'));
          continue;
        }
        progress(`churn ${name} x${clients}`);
        record(await measureChurn(target, clients, plan.load));
      } else {
        progress(`streaming ${name} x${clients}`);
        const m = await measureStreaming(target, clients, plan.load);
        if (name === 'gateway' && m.status === 'failed' && /HTTP 404/.test(m.reason ?? '')) {
          record(notMeasured('streaming', name, clients, 'n/a', `POST /{name}/sse answers 404 in this build: ${m.reason}`));
        } else record(m);
      }
    }
  });
  if (failure !== undefined) for (const [workload, clients] of planned) record(notMeasured(workload, name, clients, 'failed', failure));
}

/** (d): a gateway whose server has an oauth2/pkce block, 16 clients each with its own Bearer token. */
async function measureAuth(plan: Plan, rows: Measurement[]): Promise<void> {
  const record = (m: Measurement): void => {
    rows.push(m);
    progress(`auth ${m.target} x${m.clients}: ${describe(m)}`);
  };
  if (!plan.targets.includes('gateway')) return;
  const tokens = Array.from({ length: AUTH_TOKENS }, (_, i) => `bench-${i}-${randomBytes(12).toString('hex')}`);
  const label = `gateway, ${AUTH_TOKENS} tokens`;
  const failure = await withTarget('gateway', { auth: true, probeToken: tokens[0] }, async (target) => {
    progress(`auth gateway x${AUTH_TOKENS} (one process per token)`);
    const m = await measureSteady('auth', target, label, AUTH_TOKENS, plan.load, tokens);
    if (m.status === 'failed' && /HTTP (401|404)/.test(m.reason ?? '')) record(notMeasured('auth', label, AUTH_TOKENS, 'n/a', `the gateway does not serve Bearer calls yet: ${m.reason}`));
    else record(m);
  });
  if (failure !== undefined) {
    record(notMeasured('auth', label, AUTH_TOKENS, 'n/a', `the gateway refused the auth config or the call: ${failure}`));
    return;
  }
  await withTarget('gateway', {}, async (target) => {
    await warmUp(target, plan.warmMs);
    record(await measureSteady('auth', target, 'gateway, no auth', AUTH_TOKENS, plan.load));
  });
  for (const peer of ['mcp-proxy', 'supergateway'] as const) {
    if (plan.targets.includes(peer)) record(notMeasured('auth', peer, AUTH_TOKENS, 'n/a', 'no per-token server processes (a fixed API key or outbound header only)'));
  }
}

async function main(): Promise<number> {
  let plan: Plan | undefined;
  try {
    plan = planFrom(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (!plan) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (plan.profileDir !== undefined) mkdirSync(plan.profileDir, { recursive: true });
  const started = Date.now();
  const rows: Measurement[] = [];
  for (const name of plan.targets) await measureTarget(name, plan, rows);
  if (plan.workloads.has('auth')) await measureAuth(plan, rows);
  const seconds = (Date.now() - started) / 1000;
  let profile: ProfileSummary | undefined;
  if (plan.profileDir !== undefined) {
    const file = newestProfile(plan.profileDir);
    if (file) profile = summarizeCpuProfile(file, repoRoot, 10);
  }
  const machine = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30) };
  if (plan.json) {
    const rs = ratios(rows);
    const result = { machine, durationMs: plan.load.durationMs, elapsedSeconds: seconds, measurements: rows, ratios: rs, goals: goals(rows, rs), profile };
    process.stdout.write(`${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  } else {
    const header = `FluidMCP bench: node ${machine.node}, ${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGb} GB; upstream server-everything over stdio; window ${(plan.load.durationMs / 1000).toFixed(1)} s; whole run ${seconds.toFixed(0)} s`;
    process.stdout.write(`${formatReport(rows, header)}\n`);
    if (profile) process.stdout.write(`\n${formatProfile(profile)}\n`);
  }
  return 0;
}

let interrupted = false;
const onSignal = (): void => {
  if (interrupted) process.exit(130);
  interrupted = true;
  progress('interrupted: stopping the targets');
  Promise.allSettled([...running].map((t) => t.stop())).then(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    Promise.allSettled([...running].map((t) => t.stop())).then(() => process.exit(1));
  },
);
