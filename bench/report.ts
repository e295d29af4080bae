import type { Measurement, WorkloadName } from './load.js';
import { GROUP, type ClientKind } from './targets.js';

/** A figure over the rounds of a run: its median and its spread. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** One target, client kind and client count of a workload, over all rounds. */
export interface Summary {
  workload: WorkloadName;
  target: string;
  client: ClientKind | '-';
  clients: number;
  /** rounds that measured it; `failed` when any round could not serve at all */
  status: Measurement['status'];
  reason?: string;
  rounds: number;
  rate: Stat;
  p50Ms: Stat;
  p99Ms: Stat;
  /** failed calls summed over the rounds (setup included) */
  errors: number;
  /** highest peak RSS of the front process over the rounds, MB */
  peakRssMb?: number;
  maxProcs?: number;
  cpuPct?: Stat;
  treeCpuPct?: Stat;
  /** CPU time of the front process per completed call, microseconds: less noisy than the rate on a busy machine */
  cpuUsPerCall?: Stat;
  otherPct?: Stat;
  setupSeconds: Stat;
  driverCpuPct: Stat;
  errorSamples: { message: string; count: number }[];
}

export interface Ratio {
  workload: WorkloadName;
  clients: number;
  client: ClientKind;
  /** gateway rate / direct rate, each round against the same round */
  ofDirect?: Stat;
  /** gateway rate / mcp-proxy rate (Infinity when mcp-proxy answered nothing correctly) */
  ofMcpProxy?: Stat;
  /** gateway rate / supergateway rate */
  ofSupergateway?: Stat;
  /** gateway p50 - direct p50, ms */
  p50OverDirectMs?: Stat;
  /** gateway rate / floor rate: how much of the node:http ceiling the gateway reaches */
  ofFloor?: Stat;
  /** floor rate / mcp-proxy rate: the most any node:http gateway could reach against mcp-proxy here */
  floorOfMcpProxy?: Stat;
  /** gateway rate / relay rate: how much of the ceiling with an upstream the gateway reaches */
  ofRelay?: Stat;
  /** relay rate / mcp-proxy rate: the most any node:http gateway in front of this server could reach against mcp-proxy here */
  relayOfMcpProxy?: Stat;
  /** relay rate / direct rate: the most of direct any node:http gateway in front of this server could reach here */
  relayOfDirect?: Stat;
}

/** The modern-client workload (e) against direct and the legacy gateway workload, round by round. */
export interface ModernRatio {
  clients: number;
  client: ClientKind;
  /** modern gateway calls/s / direct calls/s (steady, same client count, same round) */
  ofDirect?: Stat;
  /** modern gateway calls/s / legacy gateway calls/s (steady, same client kind and count, same round) */
  ofLegacy?: Stat;
  /** modern p50 - legacy p50, ms */
  p50OverLegacyMs?: Stat;
}

/** The group workload (f): echo through the group against echo through its member, round by round. */
export interface GroupRatio {
  clients: number;
  client: ClientKind;
  /** group calls/s / member calls/s */
  ofMember: Stat;
  /** the gateway's CPU time per call through the group / through the member */
  cpuPerCall?: Stat;
  /** group p50 - member p50, ms */
  p50OverMemberMs?: Stat;
}

export interface Goal {
  what: string;
  /** undefined: not measured in this run */
  pass: boolean | undefined;
  detail: string;
  /**
   * the goal is above the relay's own figure in the same run: no node:http gateway in front of this
   * server reaches it on this machine, so `--check` holds the gateway to GOALS.ofRelay32 of the relay instead
   */
  beyondCeiling?: boolean;
}

/**
 * The goals `--check` enforces (issue 11). `ofRelay32` stands in for a 32-client ratio goal that the relay
 * (bench/relay-server.ts, the ceiling of any node:http gateway over this upstream) misses in the same run.
 */
export const GOALS = { ofDirect32: 0.4, ofMcpProxy32: 8, ofRelay32: 0.85, p50Over1Ms: 0.15, rss128Mb: 100, groupOfMember: 0.9 };

/**
 * The goals `--check` fails on: those not met, and those not measured; a goal beyond the ceiling is not
 * among them (the gateway's share of the relay, reported beside it, is).
 */
export function unmetGoals(goals: Goal[]): Goal[] {
  return goals.filter((g) => g.pass !== true && !(g.pass === false && g.beyondCeiling === true));
}

/** A 32-client ratio goal, or, when the relay misses it too in this run, a goal beyond the ceiling. */
function ratioGoal(what: string, gateway: Stat, goal: number, relay: Stat | undefined, fmt: (n: number) => string): Goal {
  const detail = `median ${fmtStat(gateway, fmt)}`;
  if (relay && relay.n > 0 && relay.median < goal) {
    return { what, pass: gateway.median >= goal, beyondCeiling: true, detail: `${detail}; the relay itself: ${fmtStat(relay, fmt)}, so no node:http gateway in front of this server reaches it on this machine` };
  }
  return { what, pass: gateway.median >= goal, detail };
}

const UNITS: Record<WorkloadName, string> = { steady: 'calls/s', churn: 'sessions/s', streaming: 'streams/s', auth: 'calls/s', modern: 'calls/s', group: 'calls/s' };
const TITLES: Record<WorkloadName, string> = {
  steady: '(a) steady calls: each client initializes, then calls tools/call echo in a loop',
  churn: '(b) session churn: each client loops over initialize, one echo, DELETE (latency = whole session)',
  streaming: '(c) streaming: a trigger-long-running-operation call (2 progress events) streamed back; gateway POST /{name}/sse, peers the SSE answer of /mcp',
  auth: '(d) auth: steady echo calls with 16 distinct Bearer tokens (one server process per token)',
  modern: '(e) modern clients: 2026-07-28 stateless tools/call echo (no initialize, no session; version, method and name headers, _meta envelope)',
  group: `(f) group: echo through /${GROUP.name}/mcp (${GROUP.tool}, a group of ${GROUP.members.join(' and ')}) and through the member's own /${GROUP.members[0]}/mcp, one gateway, one server process`,
};

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : n > 0 ? 'inf' : '-');
const fmtMs = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');
const fmtPct = (n: number): string => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '-');
/** one decimal: a goal's verdict must agree with its figure (39.9% fails a 40% goal) */
const fmtPct1 = (n: number): string => (Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : '-');
const fmtX = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(1)}x` : n > 0 ? 'inf' : '-');
const fmtSigned = (n: number): string => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(3)}` : '-');

export function stat(values: number[]): Stat {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** "median (min-max)" when there is more than one round. */
function fmtStat(s: Stat | undefined, f: (n: number) => string): string {
  if (!s || s.n === 0) return '-';
  if (s.n === 1 || s.min === s.max) return f(s.median);
  return `${f(s.median)} (${f(s.min)}-${f(s.max)})`;
}

const keyOf = (r: { workload: string; target: string; client: string; clients: number }): string => `${r.workload}\0${r.target}\0${r.client}\0${r.clients}`;

/** Groups the rounds' rows into one summary per workload, target, client kind and client count (first-seen order). */
export function summarize(rows: Measurement[]): Summary[] {
  const groups = new Map<string, Measurement[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const out: Summary[] = [];
  for (const g of groups.values()) {
    const first = g[0]!;
    const ok = g.filter((r) => r.status === 'ok');
    const notOk = g.find((r) => r.status !== 'ok');
    const used = ok.filter((r) => r.usage);
    const samples = new Map<string, number>();
    for (const r of g) for (const e of r.errorSamples) samples.set(e.message, (samples.get(e.message) ?? 0) + e.count);
    out.push({
      workload: first.workload,
      target: first.target,
      client: first.client,
      clients: first.clients,
      status: ok.length === 0 ? (notOk?.status ?? 'failed') : notOk?.status === 'failed' ? 'failed' : 'ok',
      reason: notOk?.reason,
      rounds: ok.length,
      rate: stat(ok.map((r) => r.rate)),
      p50Ms: stat(ok.map((r) => r.p50Ms)),
      p99Ms: stat(ok.map((r) => r.p99Ms)),
      errors: g.reduce((a, r) => a + r.errors, 0),
      peakRssMb: used.length > 0 ? Math.max(...used.map((r) => r.usage!.peakRssMb)) : undefined,
      maxProcs: used.length > 0 ? Math.max(...used.map((r) => r.usage!.maxProcs)) : undefined,
      cpuPct: used.length > 0 ? stat(used.map((r) => r.usage!.cpuPct)) : undefined,
      treeCpuPct: used.length > 0 ? stat(used.map((r) => r.usage!.treeCpuPct)) : undefined,
      cpuUsPerCall: used.length > 0 ? stat(used.map((r) => (r.usage!.cpuPct / 100) * 1e6 / r.rate)) : undefined,
      otherPct: used.length > 0 ? stat(used.map((r) => Math.max(0, r.usage!.machineCpuPct - r.usage!.treeCpuPct - r.driverCpuPct))) : undefined,
      setupSeconds: stat(ok.map((r) => r.setupSeconds)),
      driverCpuPct: stat(ok.map((r) => r.driverCpuPct)),
      errorSamples: [...samples].map(([message, count]) => ({ message, count })),
    });
  }
  return out;
}

/**
 * The gateway against direct and the alternatives, round by round (each round's figures against the
 * same round's), then the median and spread of those ratios.
 */
export function ratios(rows: Measurement[]): Ratio[] {
  const out: Ratio[] = [];
  for (const workload of ['steady', 'churn', 'streaming'] as const) {
    const mine = rows.filter((r) => r.workload === workload);
    const seen = new Set<string>();
    for (const gw of mine.filter((r) => r.target === 'gateway' && r.client !== '-')) {
      const client = gw.client as ClientKind;
      const k = `${gw.clients}\0${client}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const gws = mine.filter((r) => r.target === 'gateway' && r.client === client && r.clients === gw.clients && r.status === 'ok');
      const against = (target: string, sameClient: boolean, f: (g: Measurement, o: Measurement) => number): Stat | undefined => {
        const values: number[] = [];
        for (const g of gws) {
          const o = mine.find((r) => r.target === target && r.clients === g.clients && r.round === g.round && (!sameClient || r.client === client) && (r.status === 'ok' || r.status === 'failed'));
          if (o) values.push(f(g, o));
        }
        return values.length > 0 ? stat(values) : undefined;
      };
      const byRate = (g: Measurement, o: Measurement): number => (o.status === 'ok' && o.rate > 0 ? g.rate / o.rate : Infinity);
      const directOk = (g: Measurement, o: Measurement): number => (o.status === 'ok' ? g.rate / o.rate : NaN);
      out.push({
        workload,
        clients: gw.clients,
        client,
        ofDirect: against('direct', false, directOk),
        ofMcpProxy: against('mcp-proxy', true, byRate),
        ofSupergateway: against('supergateway', true, byRate),
        ofFloor: against('floor', true, directOk),
        floorOfMcpProxy: ceilingOver('floor', mine, gw.clients, client),
        ofRelay: against('relay', true, directOk),
        relayOfMcpProxy: ceilingOver('relay', mine, gw.clients, client),
        relayOfDirect: ceilingOver('relay', mine, gw.clients, client, 'direct'),
        p50OverDirectMs: against('direct', false, (g, o) => (o.status === 'ok' ? g.p50Ms - o.p50Ms : NaN)),
      });
    }
  }
  return out;
}

/** floor or relay rate / mcp-proxy (or direct) rate, round by round: a ceiling of the gateway's ratio on this machine */
function ceilingOver(ceiling: 'floor' | 'relay', rows: Measurement[], clients: number, client: ClientKind, other: 'mcp-proxy' | 'direct' = 'mcp-proxy'): Stat | undefined {
  const values: number[] = [];
  for (const f of rows.filter((r) => r.target === ceiling && r.client === client && r.clients === clients && r.status === 'ok')) {
    const o = rows.find((r) => r.target === other && (other === 'direct' || r.client === client) && r.clients === clients && r.round === f.round && r.status === 'ok');
    if (o && o.rate > 0) values.push(f.rate / o.rate);
  }
  return values.length > 0 ? stat(values) : undefined;
}

/** Usage-based CPU time per completed call of one measurement, microseconds. */
const cpuUsPerCall = (m: Measurement): number => (m.usage && m.rate > 0 ? ((m.usage.cpuPct / 100) * 1e6) / m.rate : NaN);

/** (e) against direct and the legacy gateway, each round's modern figure against the same round's. */
export function modernRatios(rows: Measurement[]): ModernRatio[] {
  const out: ModernRatio[] = [];
  const seen = new Set<string>();
  for (const m of rows.filter((r) => r.workload === 'modern' && r.target === 'gateway' && r.client !== '-')) {
    const client = m.client as ClientKind;
    const k = `${m.clients}\0${client}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const mine = rows.filter((r) => r.workload === 'modern' && r.target === 'gateway' && r.client === client && r.clients === m.clients && r.status === 'ok');
    const against = (match: (r: Measurement) => boolean, f: (g: Measurement, o: Measurement) => number): Stat | undefined => {
      const values: number[] = [];
      for (const g of mine) {
        const o = rows.find((r) => r.workload === 'steady' && r.clients === g.clients && r.round === g.round && r.status === 'ok' && match(r));
        if (o) values.push(f(g, o));
      }
      return values.length > 0 ? stat(values) : undefined;
    };
    out.push({
      clients: m.clients,
      client,
      ofDirect: against((r) => r.target === 'direct', (g, o) => g.rate / o.rate),
      ofLegacy: against((r) => r.target === 'gateway' && r.client === client, (g, o) => g.rate / o.rate),
      p50OverLegacyMs: against((r) => r.target === 'gateway' && r.client === client, (g, o) => g.p50Ms - o.p50Ms),
    });
  }
  return out;
}

/** (f): each round's group figure against the same round's member figure, same client kind and count. */
export function groupRatios(rows: Measurement[]): GroupRatio[] {
  const out: GroupRatio[] = [];
  const seen = new Set<string>();
  for (const g of rows.filter((r) => r.workload === 'group' && r.target === 'group' && r.client !== '-')) {
    const client = g.client as ClientKind;
    const k = `${g.clients}\0${client}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const pairs: [Measurement, Measurement][] = [];
    for (const gr of rows.filter((r) => r.workload === 'group' && r.target === 'group' && r.client === client && r.clients === g.clients && r.status === 'ok')) {
      const member = rows.find((r) => r.workload === 'group' && r.target === 'member' && r.client === client && r.clients === gr.clients && r.round === gr.round && r.status === 'ok');
      if (member) pairs.push([gr, member]);
    }
    if (pairs.length === 0) continue;
    const cpu = pairs.map(([a, b]) => cpuUsPerCall(a) / cpuUsPerCall(b));
    out.push({
      clients: g.clients,
      client,
      ofMember: stat(pairs.map(([a, b]) => a.rate / b.rate)),
      cpuPerCall: cpu.some((x) => !Number.isNaN(x)) ? stat(cpu) : undefined,
      p50OverMemberMs: stat(pairs.map(([a, b]) => a.p50Ms - b.p50Ms)),
    });
  }
  return out;
}

/** Issue 16's cost goal for each client kind and count of (f): the group serves >= 90% of the member's calls/s. */
function groupGoals(summaries: Summary[], gr: GroupRatio[], kinds: ClientKind[]): Goal[] {
  const out: Goal[] = [];
  const what = (client: ClientKind, clients?: number): string => `[${client} client] group${clients !== undefined ? `, ${clients} clients` : ''}: echo through a group of two costs at most 10% more than through the member (group >= ${GOALS.groupOfMember * 100}% of the member's calls/s)`;
  for (const client of kinds) {
    const mine = gr.filter((r) => r.client === client);
    const failed = summaries.filter((s) => s.workload === 'group' && s.client === client && s.status !== 'ok');
    if (mine.length === 0) {
      const why = failed[0] ? `${failed[0].target}: ${failed[0].status}: ${failed[0].reason ?? ''}` : 'not measured in this run (needs --only with f or group)';
      out.push({ what: what(client), pass: failed[0] ? false : undefined, detail: why });
      continue;
    }
    for (const r of mine) {
      const rate = (target: string): string => {
        const s = summaries.find((x) => x.workload === 'group' && x.target === target && x.client === client && x.clients === r.clients);
        return s && s.rounds > 0 ? fmtInt(s.rate.median) : '-';
      };
      const errors = summaries.filter((x) => x.workload === 'group' && x.client === client && x.clients === r.clients).reduce((a, x) => a + x.errors, 0);
      out.push({
        what: what(client, r.clients),
        pass: r.ofMember.median >= GOALS.groupOfMember && errors === 0,
        detail: `group/member median ${fmtStat(r.ofMember, fmtPct)}; group ${rate('group')} calls/s, member ${rate('member')} calls/s (medians); ${errors} failed calls`,
      });
    }
  }
  return out;
}

/** The goals of issue 11, on the medians of this run, for each client kind; `pass: undefined` when not measured. */
export function goals(summaries: Summary[], rs: Ratio[], kinds: ClientKind[]): Goal[] {
  const out: Goal[] = [];
  for (const client of kinds) {
    const tag = `[${client} client]`;
    const r32 = rs.find((r) => r.workload === 'steady' && r.clients === 32 && r.client === client);
    const r1 = rs.find((r) => r.workload === 'steady' && r.clients === 1 && r.client === client);
    const gw128 = summaries.find((s) => s.workload === 'steady' && s.target === 'gateway' && s.client === client && s.clients === 128);
    const missing = (what: string, needs: string): Goal => ({ what: `${tag} ${what}`, pass: undefined, detail: `not measured in this run (needs ${needs})` });
    const d32 = r32?.ofDirect;
    const ofDirect = `32 clients: gateway >= ${GOALS.ofDirect32 * 100}% of direct`;
    if (d32 && d32.n > 0) out.push(ratioGoal(`${tag} ${ofDirect}`, d32, GOALS.ofDirect32, r32?.relayOfDirect, fmtPct1));
    else out.push(missing(ofDirect, '--clients with 32 and --targets with direct,gateway'));
    const m32 = r32?.ofMcpProxy;
    const ofMcpProxy = `32 clients: gateway >= ${GOALS.ofMcpProxy32}x mcp-proxy`;
    if (m32 && m32.n > 0) out.push(ratioGoal(`${tag} ${ofMcpProxy}`, m32, GOALS.ofMcpProxy32, r32?.relayOfMcpProxy, fmtX));
    else out.push(missing(ofMcpProxy, '--clients with 32 and --targets with gateway,mcp-proxy'));
    if (out.some((g) => g.beyondCeiling && g.what.startsWith(tag))) {
      const rr = r32?.ofRelay;
      out.push({ what: `${tag} 32 clients: gateway >= ${GOALS.ofRelay32 * 100}% of the relay (in place of the goals beyond it)`, pass: rr !== undefined && rr.median >= GOALS.ofRelay32, detail: rr ? `median ${fmtStat(rr, fmtPct1)}` : 'the relay has no figure for this client' });
    }
    const p1 = r1?.p50OverDirectMs;
    if (p1 && p1.n > 0) out.push({ what: `${tag} 1 client: gateway p50 at most ${GOALS.p50Over1Ms} ms above direct`, pass: p1.median <= GOALS.p50Over1Ms, detail: `median ${fmtStat(p1, fmtSigned)} ms` });
    else out.push(missing(`1 client: gateway p50 at most ${GOALS.p50Over1Ms} ms above direct`, '--clients with 1 and --targets with direct,gateway'));
    if (gw128 && gw128.peakRssMb !== undefined) {
      const pass = gw128.peakRssMb < GOALS.rss128Mb && gw128.errors === 0 && gw128.status === 'ok';
      out.push({ what: `${tag} 128 clients: gateway peak RSS under ${GOALS.rss128Mb} MB and no failed call`, pass, detail: `peak ${gw128.peakRssMb.toFixed(1)} MB, ${gw128.errors} failed calls over ${gw128.rounds} rounds` });
    } else if (gw128) out.push({ what: `${tag} 128 clients: gateway serves every call`, pass: false, detail: `${gw128.status}: ${gw128.reason ?? ''}` });
    else out.push(missing(`128 clients: gateway peak RSS under ${GOALS.rss128Mb} MB and no failed call`, '--clients with 128'));
  }
  return out;
}

function table(header: string[], body: string[][], alignLeft: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function rowCells(s: Summary): string[] {
  if (s.rounds === 0) return [s.target, s.client, String(s.clients), s.status === 'failed' ? 'FAILED' : s.status];
  const f0 = (n: number): string => n.toFixed(0);
  return [
    s.target,
    s.client,
    String(s.clients),
    fmtStat(s.rate, fmtInt),
    fmtStat(s.p50Ms, fmtMs),
    fmtMs(s.p99Ms.median),
    fmtInt(s.errors),
    s.peakRssMb !== undefined ? s.peakRssMb.toFixed(0) : '-',
    s.maxProcs !== undefined ? String(s.maxProcs) : '-',
    s.cpuPct ? f0(s.cpuPct.median) : '-',
    s.cpuUsPerCall ? f0(s.cpuUsPerCall.median) : '-',
    s.treeCpuPct ? f0(s.treeCpuPct.median) : '-',
    f0(s.driverCpuPct.median),
    s.otherPct ? f0(s.otherPct.median) : '-',
  ];
}

/** The human report: a table per workload (medians over the rounds, spread in brackets), the ratios, the goals. */
export function formatReport(rows: Measurement[], header: string, kinds: ClientKind[], expect: { steady: boolean; group: boolean } = { steady: true, group: false }): { text: string; goals: Goal[] } {
  const out: string[] = [header];
  const summaries = summarize(rows);
  for (const workload of ['steady', 'churn', 'streaming', 'auth', 'modern', 'group'] as const) {
    const mine = summaries.filter((r) => r.workload === workload);
    if (mine.length === 0) continue;
    out.push('', TITLES[workload]);
    out.push(table(['target', 'client', 'clients', `${UNITS[workload]} median (min-max)`, 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'procs', 'cpu%', 'cpu us/call', 'tree%', 'drv%', 'other%'], mine.map(rowCells), 2));
    for (const s of mine) {
      if (s.status !== 'ok') out.push(`  - ${s.target} ${s.client} x${s.clients}: ${s.status === 'failed' ? 'FAILED' : s.status}: ${s.reason ?? ''}`);
    }
    for (const s of mine.filter((m) => m.rounds > 0)) {
      for (const e of s.errorSamples) out.push(`  ! ${s.target} ${s.client} x${s.clients}: ${e.count} x ${e.message}`);
    }
  }
  const rs = ratios(rows);
  if (rs.length > 0) {
    out.push('', 'Ratios, round by round against the same round, median (min-max): gateway rate / the other\'s rate');
    out.push(
      table(
        ['workload', 'client', 'clients', 'gateway/direct', 'gateway/mcp-proxy', 'gateway/supergateway', 'p50 gateway-direct ms', 'gateway/floor', 'floor/mcp-proxy', 'gateway/relay', 'relay/mcp-proxy'],
        rs.map((r) => [r.workload, r.client, String(r.clients), fmtStat(r.ofDirect, fmtPct), fmtStat(r.ofMcpProxy, fmtX), fmtStat(r.ofSupergateway, fmtX), fmtStat(r.p50OverDirectMs, fmtSigned), fmtStat(r.ofFloor, fmtPct), fmtStat(r.floorOfMcpProxy, fmtX), fmtStat(r.ofRelay, fmtPct), fmtStat(r.relayOfMcpProxy, fmtX)]),
        2,
      ),
    );
  }
  const mr = modernRatios(rows);
  if (mr.length > 0) {
    out.push('', 'Modern clients (e), round by round against the same round: modern gateway rate / direct, / the legacy gateway (a) at the same client count');
    out.push(
      table(
        ['client', 'clients', 'modern/direct', 'modern/legacy gateway', 'p50 modern-legacy ms'],
        mr.map((r) => [r.client, String(r.clients), fmtStat(r.ofDirect, fmtPct), fmtStat(r.ofLegacy, fmtPct), fmtStat(r.p50OverLegacyMs, fmtSigned)]),
        1,
      ),
    );
  }
  const gr = groupRatios(rows);
  if (gr.length > 0) {
    out.push('', 'Group (f), round by round against the same round: through the group / through the member');
    out.push(
      table(
        ['client', 'clients', 'group/member calls/s', 'group/member cpu us/call', 'p50 group-member ms'],
        gr.map((r) => [r.client, String(r.clients), fmtStat(r.ofMember, fmtPct), fmtStat(r.cpuPerCall, (n) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '-')), fmtStat(r.p50OverMemberMs, fmtSigned)]),
        1,
      ),
    );
  }
  const gwSteady = summaries.filter((s) => s.workload === 'steady' && s.target === 'gateway' && s.peakRssMb !== undefined);
  if (gwSteady.length > 0) {
    out.push('', `Gateway peak RSS during (a): ${Math.max(...gwSteady.map((s) => s.peakRssMb!)).toFixed(1)} MB sampled every 100 ms`);
  }
  const others = summaries.filter((s) => s.otherPct).map((s) => s.otherPct!.median);
  const meanOther = others.length > 0 ? others.reduce((a, b) => a + b, 0) / others.length : 0;
  if (meanOther > 25) {
    out.push('', `WARNING: other processes on this machine used ${meanOther.toFixed(0)}% CPU on average during the windows (100 = one core): the figures are skewed; run again on a quiet machine.`);
  }
  // each workload with goals is held to them when it was asked for (a run of other workloads has none)
  const gs = expect.steady ? goals(summaries, rs, kinds) : [];
  if (expect.group || gr.length > 0) gs.push(...groupGoals(summaries, gr, kinds));
  if (gs.length > 0) out.push('', 'Goals (issues 11 and 16; medians over the rounds)');
  for (const g of gs) out.push(`  [${g.pass === undefined ? 'NOT MEASURED' : g.pass ? 'PASS' : g.beyondCeiling ? 'BEYOND CEILING' : 'FAIL'}] ${g.what}: ${g.detail}`);
  out.push(
    '',
    'Columns: a figure is the median over the rounds, (min-max) its spread; errors = failed calls summed over the rounds;',
    'RSS MB = highest peak VmRSS of the front process (gateway, proxy, or the server for direct); procs = most processes in its tree;',
    'cpu% = CPU of the front process during the window (100 = one core); cpu us/call = its CPU time per completed call;',
    'tree% = the front process and its children (upstream servers); drv% = the load driver; other% = everything else on the machine.',
  );
  return { text: out.join('\n'), goals: gs };
}
