import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A tiny `/bin/sh` beside the gateway that ends the servers' process groups when the gateway dies
 * without stopping them (SIGKILL, a crash of the runtime: no exit handler runs). The gateway writes
 * `+<pgid>` when a group starts and `-<pgid>` when it ends on a pipe to the watchdog's stdin; when that
 * pipe closes, whatever the reason, the watchdog sends SIGTERM to each group still listed, then SIGKILL
 * two seconds later, and exits. One per gateway process, started with the first server; it holds no
 * event-loop reference, so it never keeps the gateway alive. POSIX only (Windows has no process groups).
 */
const SCRIPT = `
g=" "
while IFS= read -r line; do
  case "$line" in
    +*) g="$g\${line#+} " ;;
    -*) n=" "; for p in $g; do [ "$p" = "\${line#-}" ] || n="$n$p "; done; g="$n" ;;
  esac
done
[ "$g" = " " ] && exit 0
for p in $g; do kill -15 "-$p" 2>/dev/null; done
sleep 2
for p in $g; do kill -9 "-$p" 2>/dev/null; done
exit 0
`;

/** The name the watchdog shows in `ps` (its `$0`). */
export const WATCHDOG_NAME = 'fluidmcp-watchdog';

let watchdog: ChildProcess | undefined;
let failed = false;

function start(): ChildProcess | undefined {
  if (watchdog || failed || process.platform === 'win32') return watchdog;
  try {
    const child = spawn('/bin/sh', ['-c', SCRIPT, WATCHDOG_NAME], {
      // its own session: a signal to the gateway's terminal group does not end it before the gateway
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    child.on('error', () => {
      failed = true;
      watchdog = undefined;
    });
    child.on('exit', () => {
      if (watchdog === child) watchdog = undefined;
    });
    // EPIPE when it is gone: the process-exit handler in process-groups.ts still runs on a normal exit
    child.stdin!.on('error', () => undefined);
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    watchdog = child;
  } catch {
    failed = true;
  }
  return watchdog;
}

/** Tells the watchdog a group started (`+`) or ended (`-`). */
export function tellWatchdog(op: '+' | '-', pgid: number): void {
  const child = op === '+' ? start() : watchdog;
  if (child?.stdin?.writable) child.stdin.write(`${op}${pgid}\n`);
}
