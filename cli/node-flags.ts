import { spawn } from 'node:child_process';

import { missingNodeFlags } from '../core/node-flags.js';

// the flags and why: core/node-flags.ts (the bin's shebang in cli/main.ts carries the same list)
export { GATEWAY_NODE_FLAGS, missingNodeFlags } from '../core/node-flags.js';

/** Set in the relaunched process (to the flags it added); set it to anything to stop the relaunch. */
export const RELAUNCH_MARKER = 'FMCP_NODE_FLAGS';

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
