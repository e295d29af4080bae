import { FluidError } from '../core/index.js';

/** Exit codes: 2 for what the user typed or wrote (arguments, config, packages, plugins), 1 for the rest. */
export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

const USAGE_CODES = new Set([
  'FMCP_ERR_CONFIG_READ',
  'FMCP_ERR_CONFIG_JSON',
  'FMCP_ERR_CONFIG_INVALID',
  'FMCP_ERR_PACKAGE_NOT_FOUND',
  'FMCP_ERR_PACKAGE_SPEC',
  'FMCP_ERR_STRATEGY_MISSING',
  'FMCP_ERR_STRATEGY_DUPLICATE',
  'FMCP_ERR_PLUGIN_LOAD',
  'FMCP_ERR_PLUGIN_INVALID',
  'FMCP_ERR_PLUGIN_DUPLICATE',
  'FMCP_ERR_PLUGIN_DEPENDENCY',
  'FMCP_ERR_PLUGIN_CYCLE',
]);

/** A mistake in the command line itself. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT_USAGE;
  if (err instanceof FluidError && USAGE_CODES.has(err.code)) return EXIT_USAGE;
  return EXIT_RUNTIME;
}

/** One line for the user: the message only, never a stack, never more than one line. */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}

/** The CLI's own lines go to stdout; logs (pino JSON) go to stderr. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function complain(line: string): void {
  process.stderr.write(`fluidmcp: ${line}\n`);
}
