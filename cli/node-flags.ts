import { spawn } from 'node:child_process';

/**
 * Node flags the serving gateway needs for its speed and memory goals (issue 11), chosen by
 * `npm run bench -- --node-flags=...` runs on the project's 2-core machine:
 * - `--max-semi-space-size=4`: a 4 MB semi-space lets a call's objects die young. At 1 MB nearly all
 *   of an in-flight call's objects were promoted (96% promotion) and the old generation grew to
 *   40 MB between full collections; Node's default (16 MB) costs RSS for nothing.
 * - `--heap-growing-percent=50`: the old generation may grow to 1.5x its live size before a full
 *   collection (V8's own factor is up to 4x): peak RSS at 128 clients stays under 100 MB.
 * `v8.setFlagsFromString` after start does not resize the heap, so they must be on Node's command
 * line (or in NODE_OPTIONS): the bin's shebang carries them, and a start with plain
 * `node dist/cli/main.js run ... --start-server` relaunches itself once with them.
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=4', '--heap-growing-percent=50'];

/** Set in the relaunched process (to the flags it added); set it to anything to stop the relaunch. */
export const RELAUNCH_MARKER = 'FMCP_NODE_FLAGS';

/** The flags of `GATEWAY_NODE_FLAGS` this process was not started with (command line or NODE_OPTIONS). */
export function missingNodeFlags(execArgv: string[] = process.execArgv, nodeOptions = process.env['NODE_OPTIONS'] ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  return GATEWAY_NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0]!;
    const alt = `--${name.slice(2).replace(/-/g, '_')}`;
    return !given.some((a) => a === name || a.startsWith(`${name}=`) || a === alt || a.startsWith(`${alt}=`));
  });
}

/** Only the long-running command is worth a second process: `run ... --start-server`. */
function serves(args: string[]): boolean {
  return args.includes('run') && args.some((a) => a === '--start-server' || a === '--start-server=true');
}

/**
 * Runs this CLI again with the missing flags, as a child that shares stdin/stdout/stderr; resolves
 * never (the launcher exits with the child's code). The child has a process group of its own, so a
 * signal to the launcher's group (a terminal's Ctrl-C, systemd's stop) reaches it exactly once: the
 * launcher passes every SIGINT, SIGTERM and SIGHUP on.
 */
function relaunch(missing: string[]): Promise<never> {
  const child = spawn(process.execPath, [...missing, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: { ...process.env, [RELAUNCH_MARKER]: missing.join(' ') },
  });
  const pass = (signal: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, pass);
  child.on('error', (err) => {
    process.stderr.write(`fluidmcp: could not start node with ${missing.join(' ')}: ${err.message} (set ${RELAUNCH_MARKER}=off to run without them)\n`);
    process.exit(70);
  });
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
  return new Promise<never>(() => undefined);
}

if (process.env[RELAUNCH_MARKER] === undefined && serves(process.argv.slice(2))) {
  const missing = missingNodeFlags();
  if (missing.length > 0) await relaunch(missing);
}
if (process.env[RELAUNCH_MARKER] !== undefined && process.channel) {
  // the relaunched gateway: when its launcher dies (even by SIGKILL), stop as on SIGTERM
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
