/**
 * Every child runs as the leader of its own process group, so one signal reaches the server and
 * whatever it started. This module tracks the live groups and, as a last resort, kills them all
 * synchronously when the gateway exits without stopping its upstreams.
 */
import { tellWatchdog } from './watchdog.js';

const liveGroups = new Set<number>();
let exitListenerInstalled = false;

const isWindows = process.platform === 'win32';

function killAllOnExit(): void {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  liveGroups.clear();
}

export function trackGroup(pgid: number): void {
  liveGroups.add(pgid);
  // a SIGKILLed gateway runs no exit handler: the watchdog ends the group then
  tellWatchdog('+', pgid);
  if (!exitListenerInstalled) {
    exitListenerInstalled = true;
    process.on('exit', killAllOnExit);
  }
}

export function untrackGroup(pgid: number): void {
  if (liveGroups.delete(pgid)) tellWatchdog('-', pgid);
}

/** How many groups are tracked (for tests and /health). */
export function trackedGroupCount(): number {
  return liveGroups.size;
}

/** Sends `signal` to the whole group; false when nothing in it is left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    // Windows has no process groups; the leader is all we can reach
    process.kill(isWindows ? pgid : -pgid, signal);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EPERM: the group still exists but holds a process we may not signal (it changed its user)
    return code === 'EPERM';
  }
}

export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}
