/**
 * Node flags the serving gateway is tuned for (issue 11), chosen by `npm run bench -- --node-flags=...`
 * runs on the project's 2-core machine:
 * - `--max-semi-space-size=4`: a 4 MB semi-space lets a call's objects die young. At 1 MB nearly all
 *   of an in-flight call's objects were promoted (96% promotion) and the old generation grew to
 *   40 MB between full collections; Node's default (16 MB) costs RSS for nothing.
 * - `--heap-growing-percent=50`: the old generation may grow to 1.5x its live size before a full
 *   collection (V8's own factor is up to 4x): peak RSS at 128 clients stays under 100 MB.
 * `v8.setFlagsFromString` after start does not resize the heap, so they must be on Node's command
 * line (or in NODE_OPTIONS): the `fluidmcp` bin's shebang carries them, a start with plain
 * `node dist/cli/main.js run ... --start-server` relaunches itself with them (cli/node-flags.ts), and a
 * program that calls `createKernel()` is told at start when they are missing.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=50'];

/** The flags of `GATEWAY_NODE_FLAGS` this process was not started with (command line or NODE_OPTIONS). */
export function missingNodeFlags(execArgv: string[] = process.execArgv, nodeOptions = process.env['NODE_OPTIONS'] ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  return GATEWAY_NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0]!;
    const alt = `--${name.slice(2).replace(/-/g, '_')}`;
    return !given.some((a) => a === name || a.startsWith(`${name}=`) || a === alt || a.startsWith(`${alt}=`));
  });
}
