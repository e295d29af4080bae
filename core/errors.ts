import { format } from 'node:util';

/** A coded error. `code` is stable and never reused; `statusCode` is the HTTP status it maps to. */
export class FluidError extends Error {
  readonly code: string;
  readonly statusCode: number;
  constructor(code: string, message: string, statusCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FluidError';
    this.code = code;
    this.statusCode = statusCode;
  }
}

export interface ErrorFactory {
  (...args: unknown[]): FluidError;
  readonly code: string;
  readonly statusCode: number;
  /** true when `err` was made by this factory */
  is(err: unknown): err is FluidError;
}

function createError(code: string, template: string, statusCode = 500): ErrorFactory {
  const make = (...args: unknown[]): FluidError =>
    new FluidError(code, format(template, ...args.map((a) => (a instanceof Error ? a.message : a))), statusCode, {
      cause: args.find((a) => a instanceof Error),
    });
  return Object.assign(make, {
    code,
    statusCode,
    is: (err: unknown): err is FluidError => err instanceof FluidError && err.code === code,
  });
}

const KIB = 1024;
const MIB = 1024 * KIB;

/** A byte count as people read it, with the exact number: `4 MiB (4194304 bytes)`, `1000 bytes`. */
export function sizeText(bytes: number): string {
  const unit = bytes >= MIB ? [MIB, 'MiB'] as const : bytes >= KIB ? [KIB, 'KiB'] as const : undefined;
  if (unit === undefined) return `${bytes} bytes`;
  const amount = Math.round((bytes / unit[0]) * 10) / 10;
  return `${amount} ${unit[1]} (${bytes} bytes)`;
}

/**
 * Every error a user or a plugin author can meet. Keys equal their codes; a retired code is never reused.
 * Messages say what went wrong, where, and what to do.
 */
export const errors = {
  FMCP_ERR_PLUGIN_INVALID: createError('FMCP_ERR_PLUGIN_INVALID', 'Invalid plugin %s: %s', 500),
  FMCP_ERR_PLUGIN_DUPLICATE: createError('FMCP_ERR_PLUGIN_DUPLICATE', 'Plugin "%s" is registered twice: give each plugin a unique name or use() it once', 500),
  FMCP_ERR_PLUGIN_DEPENDENCY: createError('FMCP_ERR_PLUGIN_DEPENDENCY', 'Plugin "%s" depends on "%s", which is not registered: add it with kernel.use() or --plugin', 500),
  FMCP_ERR_PLUGIN_CYCLE: createError('FMCP_ERR_PLUGIN_CYCLE', 'Plugins depend on each other in a cycle: %s', 500),
  FMCP_ERR_PLUGIN_FAILED: createError('FMCP_ERR_PLUGIN_FAILED', 'Plugin "%s" failed in %s: %s', 500),
  FMCP_ERR_PLUGIN_LOAD: createError('FMCP_ERR_PLUGIN_LOAD', 'Cannot load plugin "%s": %s', 500),
  FMCP_ERR_HOOK_UNKNOWN: createError('FMCP_ERR_HOOK_UNKNOWN', 'Unknown hook "%s": expected one of %s', 500),
  FMCP_ERR_HOOK_AFTER_START: createError('FMCP_ERR_HOOK_AFTER_START', 'Cannot add hook "%s" after the kernel has started: add it in a plugin\'s register()', 500),
  FMCP_ERR_ROUTE_DUPLICATE: createError('FMCP_ERR_ROUTE_DUPLICATE', 'Route %s %s is registered twice (second by %s)', 500),
  FMCP_ERR_ROUTE_INVALID: createError('FMCP_ERR_ROUTE_INVALID', 'Invalid route path "%s": %s', 500),
  FMCP_ERR_KERNEL_STATE: createError('FMCP_ERR_KERNEL_STATE', 'Cannot %s: the kernel is %s', 500),
  FMCP_ERR_TOKEN_MISSING: createError('FMCP_ERR_TOKEN_MISSING', 'Nothing provides "%s": load the plugin that provides it', 500),
  FMCP_ERR_STRATEGY_DUPLICATE: createError('FMCP_ERR_STRATEGY_DUPLICATE', '%s "%s" is registered twice: by plugin "%s" and by plugin "%s"', 500),
  FMCP_ERR_STRATEGY_MISSING: createError('FMCP_ERR_STRATEGY_MISSING', '%s: no plugin handles %s "%s" (known: %s). Load a plugin that does with --plugin <module> or a "plugins" list in the config', 500),
  FMCP_ERR_CONFIG_READ: createError('FMCP_ERR_CONFIG_READ', 'Cannot read %s: %s', 500),
  FMCP_ERR_CONFIG_JSON: createError('FMCP_ERR_CONFIG_JSON', '%s is not valid JSON: %s', 500),
  FMCP_ERR_CONFIG_INVALID: createError('FMCP_ERR_CONFIG_INVALID', '%s: %s: %s', 500),
  FMCP_ERR_PACKAGE_NOT_FOUND: createError('FMCP_ERR_PACKAGE_NOT_FOUND', 'Package %s is not installed in %s: install it there or set FMCP_PACKAGES_DIR (see `fluidmcp list`)', 404),
  FMCP_ERR_PACKAGE_SPEC: createError('FMCP_ERR_PACKAGE_SPEC', 'Invalid package "%s": expected author/package@version, author/package, "all" or a path to a metadata.json', 400),
  FMCP_ERR_LISTEN: createError('FMCP_ERR_LISTEN', 'Cannot listen on %s:%s: %s', 500),
  FMCP_ERR_NOT_FOUND: createError('FMCP_ERR_NOT_FOUND', 'No route for %s %s', 404),
  FMCP_ERR_METHOD_NOT_ALLOWED: createError('FMCP_ERR_METHOD_NOT_ALLOWED', 'Method %s is not allowed on %s (allowed: %s)', 405),
  FMCP_ERR_BODY_TOO_LARGE: createError('FMCP_ERR_BODY_TOO_LARGE', '%s: the request body is larger than the limit of %s: send a smaller body', 413),
  FMCP_ERR_BODY_TOO_LARGE_DECODED: createError('FMCP_ERR_BODY_TOO_LARGE_DECODED', '%s: the request body decoded from %s is larger than the limit of %s: send a smaller body', 413),
  FMCP_ERR_HEADERS_TOO_LARGE: createError('FMCP_ERR_HEADERS_TOO_LARGE', 'The request headers (URL included) are larger than the limit of %s: send a shorter URL or fewer/smaller headers (a token that large is not a normal access token)', 431),
  FMCP_ERR_BAD_HTTP: createError('FMCP_ERR_BAD_HTTP', 'The request is not valid HTTP/1.1 (%s): send a well-formed request (check the client or proxy that sent it)', 400),
  FMCP_ERR_UNSUPPORTED_ENCODING: createError('FMCP_ERR_UNSUPPORTED_ENCODING', '%s: Content-Encoding "%s" is not supported: send the body uncompressed, or encoded with gzip, deflate or br', 415),
  FMCP_ERR_BODY_ENCODING: createError('FMCP_ERR_BODY_ENCODING', '%s: the request body is not valid %s data (%s): send it as its Content-Encoding says, or uncompressed without that header', 400),
  FMCP_ERR_BODY_ABORTED: createError('FMCP_ERR_BODY_ABORTED', 'The client closed the connection before the request body was complete', 400),
  FMCP_ERR_REQUEST_TIMEOUT: createError('FMCP_ERR_REQUEST_TIMEOUT', 'The request did not arrive in time (its headers within %s s, all of it within %s s): send it again without pauses', 408),
  FMCP_ERR_UNAUTHORIZED: createError('FMCP_ERR_UNAUTHORIZED', '%s', 401),
  FMCP_ERR_AUTH_UNAVAILABLE: createError('FMCP_ERR_AUTH_UNAVAILABLE', 'Cannot check the credentials sent to "%s": %s', 503),
  FMCP_ERR_FORBIDDEN: createError('FMCP_ERR_FORBIDDEN', '%s', 403),
  FMCP_ERR_BAD_REQUEST: createError('FMCP_ERR_BAD_REQUEST', '%s', 400),
  FMCP_ERR_UNKNOWN_SERVER: createError('FMCP_ERR_UNKNOWN_SERVER', 'Unknown package "%s": this gateway serves %s', 404),
  FMCP_ERR_SESSION_UNKNOWN: createError('FMCP_ERR_SESSION_UNKNOWN', 'Unknown session "%s" for %s: it ended or was never opened; %s', 404),
  FMCP_ERR_SESSION_LIMIT: createError('FMCP_ERR_SESSION_LIMIT', '%s', 503),
  FMCP_ERR_SESSION_LIMIT_ADDRESS: createError('FMCP_ERR_SESSION_LIMIT_ADDRESS', '%s', 429),
  FMCP_ERR_INSTANCE_LIMIT: createError('FMCP_ERR_INSTANCE_LIMIT', '%s', 503),
  FMCP_ERR_UPSTREAM: createError('FMCP_ERR_UPSTREAM', 'Server "%s": %s', 502),
  FMCP_ERR_UPSTREAM_UNAVAILABLE: createError('FMCP_ERR_UPSTREAM_UNAVAILABLE', 'Server "%s" is unavailable: %s', 503),
  FMCP_ERR_STATE_STORE: createError('FMCP_ERR_STATE_STORE', 'The pending-state store is unavailable: %s', 503),
  FMCP_ERR_TIMEOUT: createError('FMCP_ERR_TIMEOUT', '%s did not finish within %s ms', 504),
  FMCP_ERR_INTERNAL: createError('FMCP_ERR_INTERNAL', 'Internal error: %s', 500),
} as const;

export type ErrorCode = keyof typeof errors;
