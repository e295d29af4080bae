import type { Measurement, WorkloadName } from './load.js';

export interface Ratio {
  workload: WorkloadName;
  clients: number;
  gatewayRate: number;
  directRate?: number;
  /** gateway rate / direct rate */
  ofDirect?: number;
  bestAlternative?: string;
  bestAlternativeRate?: number;
  /** gateway rate / best alternative's rate (Infinity when no alternative answered correctly) */
  ofBestAlternative?: number;
  /** gateway p50 - direct p50, ms */
  p50OverDirectMs?: number;
}

export interface Goal {
  what: string;
  pass: boolean;
  detail: string;
}

const ALTERNATIVES = ['mcp-proxy', 'supergateway'];
const UNITS: Record<WorkloadName, string> = { steady: 'calls/s', churn: 'sessions/s', streaming: 'streams/s', auth: 'calls/s' };
const TITLES: Record<WorkloadName, string> = {
  steady: '(a) steady calls: each client initializes, then calls tools/call echo in a loop',
  churn: '(b) session churn: each client loops over initialize, one echo, DELETE (latency = whole session)',
  streaming: '(c) streaming: a trigger-long-running-operation call (2 progress events) streamed back; gateway POST /{name}/sse, peers the SSE answer of /mcp',
  auth: '(d) auth: steady echo calls with 16 distinct Bearer tokens (one server process per token)',
};

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');
const fmtPct = (n: number): string => `${Math.round(n * 100)}%`;

/** Gateway against direct and against the best alternative, at each client count of a workload. */
export function ratios(rows: Measurement[]): Ratio[] {
  const out: Ratio[] = [];
  for (const workload of ['steady', 'churn', 'streaming'] as const) {
    const mine = rows.filter((r) => r.workload === workload);
    for (const gw of mine.filter((r) => r.target === 'gateway' && r.status === 'ok')) {
      const direct = mine.find((r) => r.target === 'direct' && r.clients === gw.clients && r.status === 'ok');
      const alts = mine.filter((r) => ALTERNATIVES.includes(r.target) && r.clients === gw.clients && (r.status === 'ok' || r.status === 'failed'));
      const best = alts.sort((a, b) => b.rate - a.rate)[0];
      out.push({
        workload,
        clients: gw.clients,
        gatewayRate: gw.rate,
        directRate: direct?.rate,
        ofDirect: direct ? gw.rate / direct.rate : undefined,
        bestAlternative: best?.target,
        bestAlternativeRate: best?.rate,
        ofBestAlternative: best ? (best.rate > 0 ? gw.rate / best.rate : Infinity) : undefined,
        p50OverDirectMs: direct ? gw.p50Ms - direct.p50Ms : undefined,
      });
    }
  }
  return out;
}

/** The goals of issue 6/6, checked against this run's figures. */
export function goals(rows: Measurement[], rs: Ratio[]): Goal[] {
  const out: Goal[] = [];
  const r32 = rs.find((r) => r.workload === 'steady' && r.clients === 32);
  if (r32?.ofDirect !== undefined) {
    out.push({ what: '32 clients: gateway >= 25% of direct', pass: r32.ofDirect >= 0.25, detail: `${fmtInt(r32.gatewayRate)} vs ${fmtInt(r32.directRate!)} calls/s = ${fmtPct(r32.ofDirect)}` });
  }
  if (r32?.ofBestAlternative !== undefined) {
    out.push({
      what: '32 clients: gateway >= 5x the best alternative',
      pass: r32.ofBestAlternative >= 5,
      detail: `${fmtInt(r32.gatewayRate)} vs ${r32.bestAlternative} ${fmtInt(r32.bestAlternativeRate!)} calls/s = ${Number.isFinite(r32.ofBestAlternative) ? r32.ofBestAlternative.toFixed(1) : 'inf'}x`,
    });
  }
  const r1 = rs.find((r) => r.workload === 'steady' && r.clients === 1);
  if (r1?.p50OverDirectMs !== undefined) {
    out.push({ what: '1 client: gateway p50 within 0.3 ms of direct', pass: r1.p50OverDirectMs <= 0.3, detail: `+${r1.p50OverDirectMs.toFixed(3)} ms` });
  }
  const gw128 = rows.find((r) => r.workload === 'steady' && r.target === 'gateway' && r.clients === 128 && r.usage);
  if (gw128?.usage) {
    out.push({ what: 'gateway RSS under 100 MB during (a) at 128 clients', pass: gw128.usage.peakRssMb < 100, detail: `peak ${gw128.usage.peakRssMb.toFixed(1)} MB (VmHWM so far ${gw128.usage.hwmMb.toFixed(1)} MB)` });
  }
  return out;
}

function table(header: string[], body: string[][], alignLeft: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function rowCells(r: Measurement): string[] {
  if (r.status !== 'ok') return [r.target, String(r.clients), r.status === 'failed' ? 'FAILED' : r.status];
  const u = r.usage;
  return [
    r.target,
    String(r.clients),
    fmtInt(r.rate),
    fmtMs(r.p50Ms),
    fmtMs(r.p99Ms),
    fmtInt(r.errors),
    r.setupSeconds.toFixed(2),
    u ? u.peakRssMb.toFixed(0) : '-',
    u ? String(u.maxProcs) : '-',
    u ? u.cpuPct.toFixed(0) : '-',
    u ? u.treeCpuPct.toFixed(0) : '-',
    r.driverCpuPct.toFixed(0),
    u ? Math.max(0, u.machineCpuPct - u.treeCpuPct - r.driverCpuPct).toFixed(0) : '-',
  ];
}

/** The human report: a table per workload, the ratios, the goals, and the errors seen. */
export function formatReport(rows: Measurement[], header: string): string {
  const out: string[] = [header];
  for (const workload of ['steady', 'churn', 'streaming', 'auth'] as const) {
    const mine = rows.filter((r) => r.workload === workload);
    if (mine.length === 0) continue;
    out.push('', TITLES[workload]);
    out.push(table(['target', 'clients', UNITS[workload], 'p50 ms', 'p99 ms', 'errors', 'setup s', 'RSS MB', 'procs', 'cpu%', 'tree%', 'drv%', 'other%'], mine.map(rowCells), 1));
    for (const r of mine) {
      if (r.status !== 'ok') out.push(`  - ${r.target} x${r.clients}: ${r.status === 'failed' ? 'FAILED' : r.status}: ${r.reason ?? ''}`);
    }
    for (const r of mine.filter((m) => m.status === 'ok')) {
      for (const e of r.errorSamples) out.push(`  ! ${r.target} x${r.clients}: ${e.count} x ${e.message}`);
    }
  }
  const rs = ratios(rows);
  if (rs.length > 0) {
    out.push('', 'Ratios (rate of the gateway / rate of the other, same workload and client count)');
    out.push(
      table(
        ['workload', 'clients', 'gateway/direct', 'gateway/best alternative', 'p50 gateway-direct ms'],
        rs.map((r) => [
          r.workload,
          String(r.clients),
          r.ofDirect !== undefined ? fmtPct(r.ofDirect) : '-',
          r.ofBestAlternative !== undefined ? `${Number.isFinite(r.ofBestAlternative) ? r.ofBestAlternative.toFixed(1) : 'inf'}x (${r.bestAlternative})` : '-',
          r.p50OverDirectMs !== undefined ? `${r.p50OverDirectMs >= 0 ? '+' : ''}${r.p50OverDirectMs.toFixed(3)}` : '-',
        ]),
        1,
      ),
    );
  }
  const gwSteady = rows.filter((r) => r.workload === 'steady' && r.target === 'gateway' && r.usage);
  if (gwSteady.length > 0) {
    const peak = Math.max(...gwSteady.map((r) => r.usage!.peakRssMb));
    const hwm = Math.max(...gwSteady.map((r) => r.usage!.hwmMb));
    out.push('', `Gateway peak RSS during (a): ${peak.toFixed(1)} MB sampled every 100 ms (VmHWM ${hwm.toFixed(1)} MB)`);
  }
  const others = rows.filter((r) => r.usage).map((r) => Math.max(0, r.usage!.machineCpuPct - r.usage!.treeCpuPct - r.driverCpuPct));
  const meanOther = others.length > 0 ? others.reduce((a, b) => a + b, 0) / others.length : 0;
  if (meanOther > 25) {
    out.push('', `WARNING: other processes on this machine used ${meanOther.toFixed(0)}% CPU on average during the windows (100 = one core): the figures are skewed; run again on a quiet machine.`);
  }
  const gs = goals(rows, rs);
  if (gs.length > 0) {
    out.push('', 'Goals (issue 6/6)');
    for (const g of gs) out.push(`  [${g.pass ? 'PASS' : 'FAIL'}] ${g.what}: ${g.detail}`);
  }
  out.push(
    '',
    'Columns: RSS MB = peak VmRSS of the front process (gateway, proxy, or the server for direct); procs = most processes in its tree;',
    'cpu% = CPU of the front process during the window (100 = one core); tree% = the front process and its children (upstream servers);',
    'drv% = the load driver; other% = everything else on the machine, including target processes that ended within the window (other work skews the figures);',
    'setup s = opening all sessions before the window.',
  );
  return out.join('\n');
}
