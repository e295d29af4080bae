import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { binNodeFlags } from '../cli/bin-flags.js';
import { measureChurn, measureStreaming, measureSteady, notMeasured, warmUp, type LoadOptions, type Measurement, type WorkloadName } from './load.js';
import { formatProfile, newestProfile, summarizeCpuProfile, type ProfileSummary } from './profile.js';
import { formatReport, groupRatios, modernRatios, ratios, summarize, unmetGoals } from './report.js';
import { ALL_TARGETS, CLIENT_KINDS, GROUP, repoRoot, startTarget, type ClientKind, type RunningTarget, type TargetName } from './targets.js';

const USAGE = `npm run bench -- [options]

Measures this gateway against the server over stdio directly, mcp-proxy and supergateway,
all on the same upstream (@modelcontextprotocol/server-everything over stdio). Every target
is started once; each round then measures them in turn (interleaved), and the report gives the
median and the spread (min-max) over the rounds of every figure and of every ratio.

Workloads (--only): a steady (alias legacy): initialize, then tools/call echo in a loop;
b churn: initialize, one echo, DELETE; c streaming: a call with progress streamed back;
d auth: steady calls with 16 Bearer tokens; e modern: 2026-07-28 clients, stateless echo calls
(no initialize, no session), against direct and the legacy gateway workload at the same client
count; f group: echo through a group of two members (/${GROUP.name}/mcp, ${GROUP.tool}) against echo
through the member itself (/${GROUP.members[0]}/mcp), on one gateway of its own. e and f run at 32
clients, or at --clients when given.

  --rounds <n>         interleaved rounds (default 3)
  --client <kind>      raw (the bench's own keep-alive socket client), agent (http.request
                       through a keep-alive http.Agent) or both (default both)
  --check              exit 1 unless the goals hold (32 clients: >= 40% of direct and >= 8x
                       mcp-proxy; 1 client: p50 <= 0.15 ms above direct; 128 clients: peak RSS
                       under 100 MB, no failed call; group: >= 90% of the member's calls/s); a
                       32-client goal the relay misses too in the same run is reported BEYOND
                       CEILING, and the gateway is held to >= 85% of the relay instead;
                       defaults to --only a,f --clients 1,32,128 --targets direct,gateway,mcp-proxy,floor,relay
                       (the group workload still at 32 clients)
  --quick              short windows and fewer client counts
  --duration <s>       window of each measurement in seconds (default 4, quick 1.5)
  --only <list>        workloads to run: a,b,c,d,e,f or steady,churn,streaming,auth,modern,group
                       (default all)
  --targets <list>     direct,gateway,mcp-proxy,supergateway,floor,relay (default all); floor is
                       bench/floor-server.ts, node:http answering echo itself with no upstream:
                       the ceiling of node:http alone on this machine; relay is
                       bench/relay-server.ts, node:http relaying to the same upstream with no check,
                       session or log: the ceiling of any node:http gateway in front of it
  --clients <list>     client counts of (a) (default 1,8,32,128; quick 1,32); of (e) and (f)
                       too when given (default 32)
  --node-flags <s>     Node flags for the gateway processes instead of those of the fluidmcp
                       bin's shebang (e.g. --node-flags="--max-semi-space-size=4"; "" for none): to compare
  --profile <dir>      run the gateway under node --cpu-prof into <dir> and print its hot functions
  --json               print machine-readable results instead of tables
  --help               this text`;

/** supergateway --stateful starts one server process per session: more would swamp a 2-core machine. */
const SUPERGATEWAY_SESSION_CAP = 32;
const AUTH_TOKENS = 16;

const WORKLOAD_KEYS: Record<string, WorkloadName> = {
  a: 'steady', b: 'churn', c: 'streaming', d: 'auth', e: 'modern', f: 'group',
  steady: 'steady', legacy: 'steady', churn: 'churn', streaming: 'streaming', auth: 'auth', modern: 'modern', group: 'group',
};
/** client count of the modern and group workloads unless --clients is given */
const MODERN_GROUP_CLIENTS = 32;

interface Plan {
  workloads: Set<WorkloadName>;
  targets: TargetName[];
  steadyClients: number[];
  churnClients: number[];
  streamClients: number[];
  /** client counts of (e) and (f) */
  modernClients: number[];
  groupClients: number[];
  load: LoadOptions;
  warmMs: number;
  json: boolean;
  profileDir?: string;
  /** Node flags of the gateway processes instead of the bin's shebang flags */
  nodeFlags?: string[];
  rounds: number;
  kinds: ClientKind[];
  check: boolean;
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
      'node-flags': { type: 'string' },
      rounds: { type: 'string' },
      client: { type: 'string' },
      check: { type: 'boolean', default: false },
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
  const check = values.check === true;
  let rounds = 3;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new UsageError(`--rounds takes a whole number from 1 to 50, got "${values.rounds}"`);
  }
  const clientKind = values.client ?? 'both';
  if (clientKind !== 'raw' && clientKind !== 'agent' && clientKind !== 'both') throw new UsageError(`--client takes raw, agent or both, got "${clientKind}"`);
  const kinds: ClientKind[] = clientKind === 'both' ? [...CLIENT_KINDS] : [clientKind];
  const workloads = new Set<WorkloadName>();
  for (const key of list(values.only, '--only') ?? (check ? ['a', 'f'] : ['a', 'b', 'c', 'd', 'e', 'f'])) {
    const w = Object.hasOwn(WORKLOAD_KEYS, key.toLowerCase()) ? WORKLOAD_KEYS[key.toLowerCase()] : undefined;
    if (!w) throw new UsageError(`--only knows a, b, c, d, e, f (steady or legacy, churn, streaming, auth, modern, group), got "${key}"`);
    workloads.add(w);
  }
  const targets = (list(values.targets, '--targets') ?? (check ? ['direct', 'gateway', 'mcp-proxy', 'floor', 'relay'] : ALL_TARGETS)).map((t) => {
    if (!ALL_TARGETS.includes(t as TargetName)) throw new UsageError(`--targets knows ${ALL_TARGETS.join(', ')}, got "${t}"`);
    return t as TargetName;
  });
  const given = counts(values.clients);
  return {
    workloads,
    targets: ALL_TARGETS.filter((t) => targets.includes(t)),
    steadyClients: given ?? (check ? [1, 32, 128] : quick ? [1, 32] : [1, 8, 32, 128]),
    modernClients: given ?? [MODERN_GROUP_CLIENTS],
    groupClients: given ?? [MODERN_GROUP_CLIENTS],
    churnClients: quick ? [8] : [8, 32],
    streamClients: quick ? [8] : [8, 32],
    load: { durationMs, graceMs: 10_000, setupTimeoutMs: 30_000 },
    warmMs: quick ? 500 : 1000,
    json: values.json === true,
    profileDir: values.profile,
    nodeFlags: values['node-flags'] !== undefined ? values['node-flags'].split(/\s+/).filter((f) => f !== '') : undefined,
    rounds,
    kinds,
    check,
  };
}

const progress = (text: string): void => void process.stderr.write(`[bench] ${text}\n`);

function describe(m: Measurement): string {
  if (m.status !== 'ok') return `${m.status}: ${m.reason}`;
  return `${Math.round(m.rate)}/s p50 ${m.p50Ms.toFixed(2)} ms p99 ${m.p99Ms.toFixed(2)} ms, ${m.errors} errors`;
}

const running = new Set<RunningTarget>();

/** One workload at one client count, measured on every target it names in each round (all when unnamed). */
interface Planned {
  workload: WorkloadName;
  clients: number;
  targets?: TargetName[];
}

async function start(name: TargetName, options: Parameters<typeof startTarget>[1]): Promise<RunningTarget | string> {
  try {
    progress(`starting ${name}${options?.auth ? ' with an auth block' : ''}${options?.group ? ` with the group /${GROUP.name}/mcp` : ''}`);
    const target = await startTarget(name, options);
    running.add(target);
    return target;
  } catch (err) {
    return (err as Error).message;
  }
}

async function stopAll(): Promise<void> {
  await Promise.allSettled(
    [...running].map(async (t) => {
      progress(`stopping ${t.name}`);
      await t.stop();
      running.delete(t);
    }),
  );
}

/** One measurement of one target; the client kind does not apply to direct (no HTTP). */
async function measureOnce(target: RunningTarget, workload: WorkloadName, clients: number, client: ClientKind, plan: Plan): Promise<Measurement> {
  const name = target.name;
  if (name === 'supergateway' && clients > SUPERGATEWAY_SESSION_CAP) {
    return notMeasured(workload, name, clients, 'skipped', `--stateful starts a server process per session; the bench stops at ${SUPERGATEWAY_SESSION_CAP}`, client);
  }
  if ((name === 'floor' || name === 'relay') && workload !== 'steady') return notMeasured(workload, name, clients, 'n/a', `the ${name} serves the steady workload only (initialize, echo, DELETE)`, client);
  if (workload === 'steady') return measureSteady('steady', target, name, clients, plan.load, client);
  if (workload === 'modern') return measureSteady('modern', target, name, clients, plan.load, client, { era: 'modern' });
  if (workload === 'churn') {
    if (!target.hasSessions) return notMeasured('churn', name, clients, 'n/a', 'stdio has one session per process: nothing to open or DELETE');
    return measureChurn(target, clients, plan.load, client);
  }
  const m = await measureStreaming(target, clients, plan.load, client);
  if (name === 'gateway' && m.status === 'failed' && /HTTP 404/.test(m.reason ?? '')) {
    return notMeasured('streaming', name, clients, 'n/a', `POST /{name}/sse answers 404 in this build: ${m.reason}`, client);
  }
  return m;
}

/**
 * Starts every target once, then measures them in rounds: in each round every workload and client
 * count is measured on every target in turn (the order rotates from round to round), so that a burst
 * of load from elsewhere on the machine skews all targets of a round alike and shows in the spread.
 */
async function measureRounds(plan: Plan, rows: Measurement[]): Promise<void> {
  const record = (m: Measurement, round: number): void => {
    m.round = round;
    rows.push(m);
    progress(`round ${round} ${m.workload} ${m.target} ${m.client} x${m.clients}: ${describe(m)}`);
  };
  const planned: Planned[] = [];
  if (plan.workloads.has('steady')) for (const c of plan.steadyClients) planned.push({ workload: 'steady', clients: c });
  if (plan.workloads.has('churn')) for (const c of plan.churnClients) planned.push({ workload: 'churn', clients: c });
  if (plan.workloads.has('streaming')) for (const c of plan.streamClients) planned.push({ workload: 'streaming', clients: c });
  const hasGateway = plan.targets.includes('gateway');
  const modern = plan.workloads.has('modern') && hasGateway;
  if (modern) {
    for (const c of plan.modernClients) {
      // its ratios are to direct and to the legacy gateway at the same count in the same round
      if (!(plan.workloads.has('steady') && plan.steadyClients.includes(c))) {
        planned.push({ workload: 'steady', clients: c, targets: plan.targets.filter((t) => t === 'direct' || t === 'gateway') });
      }
      planned.push({ workload: 'modern', clients: c, targets: ['gateway'] });
    }
  }
  const group = plan.workloads.has('group') && hasGateway;
  const auth = plan.workloads.has('auth') && hasGateway;
  for (const w of ['modern', 'group', 'auth'] as const) {
    if (plan.workloads.has(w) && !hasGateway) progress(`${w} not measured: --targets leaves the gateway out`);
  }
  if (planned.length === 0 && !auth && !group) return;
  const targets: RunningTarget[] = [];
  const needed = plan.targets.filter((t) => planned.some((p) => !p.targets || p.targets.includes(t)));
  if (auth && !needed.includes('gateway')) needed.push('gateway');
  for (const name of needed) {
    const t = await start(name, { profileDir: name === 'gateway' ? plan.profileDir : undefined, nodeFlags: plan.nodeFlags });
    if (typeof t === 'string') {
      for (let round = 1; round <= plan.rounds; round++) for (const p of planned) if (!p.targets || p.targets.includes(name)) record(notMeasured(p.workload, name, p.clients, 'failed', t), round);
      continue;
    }
    for (const client of t.hasHttp ? plan.kinds : ['raw' as const]) {
      await warmUp(t, plan.warmMs, client);
      if (modern && name === 'gateway') await warmUp(t, plan.warmMs, client, { era: 'modern' });
    }
    targets.push(t);
  }
  // the group workload has a gateway of its own: two server-everything members and the group of both
  let groupTarget: RunningTarget | undefined;
  if (group) {
    const t = await start('gateway', { group: true, nodeFlags: plan.nodeFlags });
    if (typeof t === 'string') {
      for (let round = 1; round <= plan.rounds; round++) for (const c of plan.groupClients) for (const side of ['member', 'group']) record(notMeasured('group', side, c, 'failed', t), round);
    } else {
      for (const client of plan.kinds) {
        await warmUp(t, plan.warmMs, client);
        await warmUp(t, plan.warmMs, client, { endpoint: 'group' });
      }
      groupTarget = t;
    }
  }
  const tokens = Array.from({ length: AUTH_TOKENS }, (_, i) => `bench-${i}-${randomBytes(12).toString('hex')}`);
  const authLabel = `gateway, ${AUTH_TOKENS} tokens`;
  let authTarget: RunningTarget | undefined;
  if (auth) {
    const t = await start('gateway', { auth: true, probeToken: tokens[0], nodeFlags: plan.nodeFlags });
    if (typeof t === 'string') record(notMeasured('auth', authLabel, AUTH_TOKENS, 'n/a', `the gateway refused the auth config or the call: ${t}`), 1);
    else authTarget = t;
  }
  const plainGateway = targets.find((t) => t.name === 'gateway');
  for (let round = 1; round <= plan.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
    for (const { workload, clients, targets: only } of planned) {
      for (const target of order) {
        if (only && !only.includes(target.name)) continue;
        for (const client of target.hasHttp ? plan.kinds : ['raw' as const]) {
          progress(`round ${round}/${plan.rounds}: ${workload} ${target.name} ${target.hasHttp ? client : ''} x${clients}`);
          record(await measureOnce(target, workload, clients, client, plan), round);
        }
      }
    }
    if (groupTarget) {
      const sides = [{ label: 'member', endpoint: 'server' as const }, { label: 'group', endpoint: 'group' as const }];
      if (round % 2 === 0) sides.reverse();
      for (const clients of plan.groupClients) {
        // each client kind's member and group windows side by side, so each ratio compares neighbours
        for (const client of plan.kinds) {
          for (const { label, endpoint } of sides) {
            progress(`round ${round}/${plan.rounds}: group ${label} ${client} x${clients}`);
            record(await measureSteady('group', groupTarget, label, clients, plan.load, client, { endpoint }), round);
          }
        }
      }
    }
    if (authTarget) {
      for (const client of plan.kinds) {
        const m = await measureSteady('auth', authTarget, authLabel, AUTH_TOKENS, plan.load, client, { tokens });
        if (m.status === 'failed' && /HTTP (401|404)/.test(m.reason ?? '')) record(notMeasured('auth', authLabel, AUTH_TOKENS, 'n/a', `the gateway does not serve Bearer calls yet: ${m.reason}`, client), round);
        else record(m, round);
        if (plainGateway) record(await measureSteady('auth', plainGateway, 'gateway, no auth', AUTH_TOKENS, plan.load, client), round);
      }
    }
  }
  if (auth) {
    for (const peer of ['mcp-proxy', 'supergateway'] as const) {
      if (plan.targets.includes(peer)) record(notMeasured('auth', peer, AUTH_TOKENS, 'n/a', 'no per-token server processes (a fixed API key or outbound header only)'), 1);
    }
  }
  await stopAll();
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
  try {
    await measureRounds(plan, rows);
  } finally {
    await stopAll();
  }
  const seconds = (Date.now() - started) / 1000;
  let profile: ProfileSummary | undefined;
  if (plan.profileDir !== undefined) {
    const file = newestProfile(plan.profileDir);
    if (file) profile = summarizeCpuProfile(file, repoRoot, 10);
  }
  const machine = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30) };
  const gatewayNodeFlags = plan.nodeFlags ?? binNodeFlags(join(repoRoot, 'dist', 'cli', 'main.js'));
  const header = `FluidMCP bench: node ${machine.node}, ${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGb} GB; upstream server-everything over stdio; gateway node flags: ${gatewayNodeFlags.join(' ') || 'none'}; ${plan.rounds} interleaved rounds of ${(plan.load.durationMs / 1000).toFixed(1)} s windows; whole run ${seconds.toFixed(0)} s`;
  const report = formatReport(rows, header, plan.kinds, { steady: plan.workloads.has('steady'), group: plan.workloads.has('group') && plan.targets.includes('gateway') });
  if (plan.json) {
    const summaries = summarize(rows);
    const rs = ratios(rows);
    const result = { machine, gatewayNodeFlags, rounds: plan.rounds, clientKinds: plan.kinds, durationMs: plan.load.durationMs, elapsedSeconds: seconds, summaries, ratios: rs, modernRatios: modernRatios(rows), groupRatios: groupRatios(rows), goals: report.goals, measurements: rows, profile };
    process.stdout.write(`${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? null : String(v)) : v), 2)}\n`);
  } else {
    process.stdout.write(`${report.text}\n`);
    if (profile) process.stdout.write(`\n${formatProfile(profile)}\n`);
  }
  if (plan.check) {
    if (report.goals.length === 0) {
      process.stderr.write('bench --check: no goal covers the workloads of this run (a and f have goals): nothing was checked\n');
      return 1;
    }
    const failed = unmetGoals(report.goals);
    if (failed.length > 0) {
      process.stderr.write(`bench --check: ${failed.length} goal(s) not met:\n${failed.map((g) => `  ${g.what}: ${g.detail}`).join('\n')}\n`);
      return 1;
    }
    process.stderr.write('bench --check: every goal met\n');
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
