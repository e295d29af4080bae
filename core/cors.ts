import type { IncomingMessage, ServerResponse } from 'node:http';

/** What a route adds to the kernel's CORS answers: header names, no protocol knowledge in the core. */
export interface RouteCors {
  /** request header names a browser may send (answered in Access-Control-Allow-Headers) */
  allowHeaders?: readonly string[];
  /** response header names a browser script may read (Access-Control-Expose-Headers) */
  exposeHeaders?: readonly string[];
}

/** Request headers any route accepts from a browser: plain HTTP names only. */
export const CORS_ALLOW_HEADERS: readonly string[] = ['content-type', 'accept', 'authorization', 'last-event-id'];
/** Response headers any route lets a browser read. */
export const CORS_EXPOSE_HEADERS: readonly string[] = ['WWW-Authenticate'];
/** How long a browser may keep a preflight answer, seconds. */
const PREFLIGHT_MAX_AGE = '600';

function union(base: readonly string[], routes: readonly { cors?: RouteCors }[], key: keyof RouteCors): string {
  const seen = new Map<string, string>();
  for (const name of base) seen.set(name.toLowerCase(), name);
  for (const route of routes) for (const name of route.cors?.[key] ?? []) if (!seen.has(name.toLowerCase())) seen.set(name.toLowerCase(), name);
  return [...seen.values()].join(', ');
}

/**
 * Every answer to an allowed browser Origin: the origin echoed, `Vary: Origin`, and the readable headers.
 * Set before the handler runs, so success and error answers alike carry them.
 */
export function setCorsHeaders(res: ServerResponse, origin: string, routes: readonly { cors?: RouteCors }[]): void {
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('vary', 'Origin');
  res.setHeader('access-control-expose-headers', union(CORS_EXPOSE_HEADERS, routes, 'exposeHeaders'));
}

/** A CORS preflight: OPTIONS with an Origin and Access-Control-Request-Method. */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** Answers a preflight (or a plain OPTIONS) for a path whose routes take `methods`: 204, no body. */
export function answerOptions(res: ServerResponse, methods: readonly string[], routes: readonly { cors?: RouteCors }[], preflight: boolean): void {
  const allowed = [...new Set([...methods, 'OPTIONS'])].join(', ');
  const head: Record<string, string> = { allow: allowed, 'content-length': '0' };
  if (preflight) {
    head['access-control-allow-methods'] = allowed;
    head['access-control-allow-headers'] = union(CORS_ALLOW_HEADERS, routes, 'allowHeaders');
    head['access-control-max-age'] = PREFLIGHT_MAX_AGE;
  }
  res.writeHead(204, head);
  res.end();
}
