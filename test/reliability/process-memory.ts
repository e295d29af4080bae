import { readFileSync } from 'node:fs';

/** Resident set size of a live process in bytes, from /proc/<pid>/status (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The seconds the reliability load tests run: FMCP_RELIABILITY_SECONDS, default 60. */
export function reliabilitySeconds(): number {
  const raw = process.env.FMCP_RELIABILITY_SECONDS;
  if (raw === undefined || raw === '') return 60;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`FMCP_RELIABILITY_SECONDS must be a positive number of seconds, got "${raw}"`);
  return seconds;
}
