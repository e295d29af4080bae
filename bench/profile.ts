import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFunction {
  name: string;
  /** file:line, relative to the repository when inside it */
  where: string;
  selfMs: number;
  /** share of the busy (non-idle) time */
  selfPct: number;
  /** the callers (up to three frames, nearest first) that account for most of its self time */
  via: string;
}

export interface ProfileSummary {
  file: string;
  busyMs: number;
  idleMs: number;
  functions: HotFunction[];
  /** self time summed by file (node internals, the gateway's files, dependencies) */
  files: { where: string; selfMs: number; selfPct: number }[];
}

function shortUrl(url: string, root: string): string {
  if (url === '') return '(native)';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith('/') ? relative(root, path) : path;
}

/** Self time per function of a V8 .cpuprofile (from `node --cpu-prof`), busiest first: samples x the median interval. */
export function summarizeCpuProfile(file: string, root: string, top = 10): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frame = (n: CpuProfileNode): string => {
    const file = shortUrl(n.callFrame.url, root);
    return `${n.callFrame.functionName || '(anonymous)'}${n.callFrame.url === '' ? '' : ` ${file.split('/').pop()}:${n.callFrame.lineNumber + 1}`}`;
  };
  const callers = (id: number): string => {
    const chain: string[] = [];
    for (let p = parent.get(id); p !== undefined && chain.length < 3; p = parent.get(p)) {
      const n = byId.get(p)!;
      if (n.callFrame.functionName === '(root)') break;
      chain.push(frame(n));
    }
    return chain.join(' < ');
  };
  const vias = new Map<string, Map<string, number>>();
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  // each sample stands for one sampling interval: weighting by the gap to the next sample would
  // charge a descheduled process's pause (a busy machine) to whatever function was on the stack
  const deltas = [...(profile.timeDeltas ?? [])].sort((a, b) => a - b);
  const intervalUs = deltas.length > 0 ? deltas[deltas.length >> 1]! : 1000;
  for (const id of samples) selfUs.set(id, (selfUs.get(id) ?? 0) + intervalUs);
  const fns = new Map<string, HotFunction>();
  const files = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const name = node.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const file = shortUrl(node.callFrame.url, root);
    const where = node.callFrame.url === '' ? file : `${file}:${node.callFrame.lineNumber + 1}`;
    const key = `${name}\0${where}`;
    const f = fns.get(key) ?? { name, where, selfMs: 0, selfPct: 0, via: '' };
    f.selfMs += us / 1000;
    fns.set(key, f);
    const v = vias.get(key) ?? new Map<string, number>();
    const chain = callers(id);
    v.set(chain, (v.get(chain) ?? 0) + us);
    vias.set(key, v);
    files.set(file, (files.get(file) ?? 0) + us / 1000);
  }
  const busyMs = busy / 1000;
  const functions = [...fns.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top);
  for (const [key, f] of fns) {
    if (!functions.includes(f)) continue;
    f.selfPct = (100 * f.selfMs) / busyMs;
    f.via = [...vias.get(key)!].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
  }
  return {
    file,
    busyMs,
    idleMs: idle / 1000,
    functions,
    files: [...files].sort((a, b) => b[1] - a[1]).slice(0, top).map(([where, selfMs]) => ({ where, selfMs, selfPct: (100 * selfMs) / busyMs })),
  };
}

/** The newest .cpuprofile in a folder. */
export function newestProfile(dir: string): string | undefined {
  const names = readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort();
  return names.length > 0 ? join(dir, names[names.length - 1]!) : undefined;
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`CPU profile ${s.file}: busy ${(s.busyMs / 1000).toFixed(2)} s, idle ${(s.idleMs / 1000).toFixed(2)} s`, 'Top functions by self time:'];
  s.functions.forEach((f, i) => {
    lines.push(`  ${String(i + 1).padStart(2)}. ${f.selfPct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name}  ${f.where}`);
    if (f.via !== '') lines.push(`                         via ${f.via}`);
  });
  lines.push('Self time by file:');
  for (const f of s.files) lines.push(`      ${f.selfPct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.where}`);
  return lines.join('\n');
}
