import { readdirSync, readFileSync } from 'node:fs';
import { repoRoot } from './paths.js';

/**
 * Which live processes belong to this test run (Linux /proc), for the root hooks in test/setup.ts.
 *
 * A process belongs to the run when any of these holds:
 * - its environment carries `FMCP_TEST_RUN=<runMarker>` (test/setup.ts sets it in the test process, so
 *   every process started with the test's environment, such as a `fluidmcp run`, inherits it);
 * - its parent chain reaches the test process or a marked process: a server started by a gateway that
 *   hands it only a small environment of its own is still the child of that gateway while it lives;
 * - it was started after the test process, its command line names a file inside this checkout (the
 *   fixtures, node_modules/@modelcontextprotocol/server-everything, dist/), and no process in its chain
 *   carries another run's marker: this catches a server whose gateway died (SIGKILL) and which was
 *   re-parented to init, where neither the environment nor the chain says whose it is.
 */

export const runMarker = `${process.pid}-${Date.now()}`;
const markerEntry = `FMCP_TEST_RUN=${runMarker}`;

export interface LeakedProcess {
  pid: number;
  cmdline: string;
  why: 'marker' | 'child' | 'started in this checkout';
}

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  start: number;
  cmdline: string;
  marker: 'ours' | 'other' | 'none';
}

function read(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name in parentheses may hold spaces: fields after the last ')' start at field 3 (state)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    let marker: ProcInfo['marker'] = 'none';
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (environ.includes(markerEntry)) marker = 'ours';
      else if (environ.some((e) => e.startsWith('FMCP_TEST_RUN='))) marker = 'other';
    } catch {
      // another user's process: not ours
    }
    return { pid, ppid: Number(fields[1]), state: fields[0]!, start: Number(fields[19]), cmdline, marker };
  } catch {
    return undefined; // it ended while we looked
  }
}

function snapshot(): Map<number, ProcInfo> {
  const all = new Map<number, ProcInfo>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = read(Number(entry));
    if (info) all.set(info.pid, info);
  }
  return all;
}

/**
 * Re-parented to a process older than the run (init or a subreaper): its own parent is gone. This keeps
 * out another test run in the same checkout (a mocha started from a shell, whose parent is younger).
 */
function orphaned(p: ProcInfo, all: Map<number, ProcInfo>, runStart: number): boolean {
  if (/\bmocha\b/.test(p.cmdline)) return false;
  const parent = all.get(p.ppid);
  return parent === undefined || parent.start < runStart;
}

/** The live processes of this run other than the test process itself (zombies excluded). */
export function leakedProcesses(): LeakedProcess[] {
  const all = snapshot();
  const self = all.get(process.pid);
  const leaked: LeakedProcess[] = [];
  const inCheckout = `${repoRoot}/`;
  for (const p of all.values()) {
    if (p.pid === process.pid || p.state === 'Z') continue;
    // transport-stdio's watchdog of the test process itself (kernels started in-process): it ends with it
    if (p.ppid === process.pid && p.cmdline.includes('fluidmcp-watchdog')) continue;
    if (p.marker === 'ours') {
      leaked.push({ pid: p.pid, cmdline: p.cmdline, why: 'marker' });
      continue;
    }
    let child = false;
    let other = p.marker === 'other';
    const seen = new Set<number>();
    for (let up = all.get(p.ppid); up && !seen.has(up.pid); up = all.get(up.ppid)) {
      seen.add(up.pid);
      if (up.pid === process.pid || up.marker === 'ours') {
        child = true;
        break;
      }
      if (up.marker === 'other') other = true;
    }
    if (child) leaked.push({ pid: p.pid, cmdline: p.cmdline, why: 'child' });
    else if (!other && self && p.start >= self.start && p.cmdline.includes(inCheckout) && orphaned(p, all, self.start)) leaked.push({ pid: p.pid, cmdline: p.cmdline, why: 'started in this checkout' });
  }
  return leaked;
}
