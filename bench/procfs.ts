import { readFileSync, readdirSync } from 'node:fs';

const PAGE_TICKS = 100; // USER_HZ on Linux

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM of a process in MB, or undefined once it is gone. */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } | undefined {
  const status = read(`/proc/${pid}/status`);
  if (status === undefined) return undefined;
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : 0;
  };
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** The process's start time (clock ticks since boot), to tell a pid from a reused one. */
export function startTimeOf(pid: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSecondsOf(pid: number): number | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / PAGE_TICKS;
}

/** Every descendant of a process (children, grandchildren, ...), read from /proc. */
export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      const children = read(`/proc/${p}/task/${tid}/children`);
      if (!children) continue;
      for (const c of children.trim().split(' ')) {
        if (c === '') continue;
        const child = Number(c);
        out.push(child);
        stack.push(child);
      }
    }
  }
  return out;
}

/** Busy and total jiffies of the whole machine, from the first line of /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const line = (read('/proc/stat') ?? '').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** CPU seconds of a process and all its descendants, by pid. */
function treeCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of [pid, ...descendantsOf(pid)]) {
    const s = cpuSecondsOf(p);
    if (s !== undefined) out.set(p, s);
  }
  return out;
}

export interface ProcessUsage {
  /** peak VmRSS of the front process seen while sampling, MB */
  peakRssMb: number;
  /** VmHWM of the front process at the end (its peak since start), MB */
  hwmMb: number;
  /** most processes seen in the tree (front process included) */
  maxProcs: number;
  /** peak summed VmRSS of the whole tree, MB */
  peakTreeRssMb: number;
  /** CPU used by the front process during sampling, percent of one core */
  cpuPct: number;
  /** CPU used by the whole tree of the target (upstream servers included), percent of one core */
  treeCpuPct: number;
  /** CPU used by the whole machine, percent of one core (200 = both cores of a 2-core machine) */
  machineCpuPct: number;
}

/** Polls a process (and its tree) while a measurement runs. */
export class ProcessSampler {
  private timer: NodeJS.Timeout | undefined;
  private peakRssMb = 0;
  private hwmMb = 0;
  private maxProcs = 0;
  private peakTreeRssMb = 0;
  private cpu0: number;
  private tree0: Map<number, number>;
  private machine0 = machineTicks();
  private t0 = process.hrtime.bigint();
  private ticks = 0;

  constructor(private readonly pid: number, intervalMs = 100) {
    this.cpu0 = cpuSecondsOf(pid) ?? 0;
    this.tree0 = treeCpu(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const mem = memoryOf(this.pid);
    if (!mem) return;
    this.peakRssMb = Math.max(this.peakRssMb, mem.rssMb);
    this.hwmMb = mem.hwmMb;
    // the tree walk costs more; every fifth sample is enough to count processes
    if (this.ticks++ % 5 !== 0) return;
    const tree = descendantsOf(this.pid);
    let total = mem.rssMb;
    for (const p of tree) total += memoryOf(p)?.rssMb ?? 0;
    this.maxProcs = Math.max(this.maxProcs, tree.length + 1);
    this.peakTreeRssMb = Math.max(this.peakTreeRssMb, total);
  }

  /** CPU is counted from here on (memory stays counted from the start). */
  resetCpu(): void {
    this.cpu0 = cpuSecondsOf(this.pid) ?? 0;
    this.tree0 = treeCpu(this.pid);
    this.machine0 = machineTicks();
    this.t0 = process.hrtime.bigint();
  }

  stop(): ProcessUsage {
    this.sample();
    clearInterval(this.timer);
    this.timer = undefined;
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const cpu = (cpuSecondsOf(this.pid) ?? this.cpu0) - this.cpu0;
    let tree = 0;
    // processes that ended during the window are missed; ones that started count from zero
    for (const [p, s] of treeCpu(this.pid)) tree += s - (this.tree0.get(p) ?? 0);
    const m = machineTicks();
    const machine = m.busy - this.machine0.busy;
    return {
      peakRssMb: this.peakRssMb,
      hwmMb: this.hwmMb,
      maxProcs: this.maxProcs,
      peakTreeRssMb: this.peakTreeRssMb,
      cpuPct: seconds > 0 ? (100 * cpu) / seconds : 0,
      treeCpuPct: seconds > 0 ? (100 * tree) / seconds : 0,
      machineCpuPct: seconds > 0 ? machine / seconds : 0,
    };
  }
}
