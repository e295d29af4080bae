import type { RequestContext } from './contracts.js';
import type { RouteCors } from './cors.js';
import { errors } from './errors.js';

export type RouteHandler = (ctx: RequestContext) => void | Promise<void>;

export interface RouteOptions {
  method: string | readonly string[];
  /** segments, with `:param` for a parameter, for example `/:name/mcp` */
  path: string;
  handler: RouteHandler;
  /** read the body before preHandler (default: true for POST, PUT, PATCH, DELETE) */
  readBody?: boolean;
  /** body limit in bytes for this route (default: the kernel's) */
  bodyLimit?: number;
  /** the path parameter that names a server: the server's auth strategy runs before the handler */
  guard?: string;
  /**
   * header names this route adds to CORS answers (every route answers allowed browser origins and
   * preflights; these add to the plain-HTTP defaults)
   */
  cors?: RouteCors;
}

export interface Route extends RouteOptions {
  readonly methods: readonly string[];
  readonly plugin: string;
}

export type RouteMatch =
  | { kind: 'found'; route: Route; params: Record<string, string> }
  | { kind: 'method'; allowed: string[]; routes: Route[] }
  | { kind: 'none' }
  | { kind: 'bad'; reason: string };

interface Pattern {
  readonly segments: readonly string[];
  readonly paramAt: readonly number[];
  readonly byMethod: Map<string, Route>;
}

const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** Static paths by map lookup, parameter paths by segment count. */
export class Router {
  private readonly exact = new Map<string, Map<string, Route>>();
  private readonly patterns = new Map<number, Pattern[]>();
  private readonly all: Route[] = [];

  add(options: RouteOptions, plugin = 'app'): Route {
    const path = options.path;
    if (!path.startsWith('/')) throw errors.FMCP_ERR_ROUTE_INVALID(path, 'it must start with "/"');
    const methods = (Array.isArray(options.method) ? options.method : [options.method]).map((m: string) => m.toUpperCase());
    const route: Route = { ...options, methods, plugin };
    const segments = path.split('/').slice(1);
    const paramAt = segments.flatMap((s, i) => (s.startsWith(':') ? [i] : []));
    let byMethod: Map<string, Route>;
    if (paramAt.length === 0) {
      byMethod = this.exact.get(path) ?? new Map();
      this.exact.set(path, byMethod);
    } else {
      const list = this.patterns.get(segments.length) ?? [];
      this.patterns.set(segments.length, list);
      let pattern = list.find((p) => p.segments.join('/') === segments.join('/'));
      if (!pattern) {
        pattern = { segments, paramAt, byMethod: new Map() };
        list.push(pattern);
        // literal segments beat parameters: fewer parameters first
        list.sort((a, b) => a.paramAt.length - b.paramAt.length);
      }
      byMethod = pattern.byMethod;
    }
    for (const m of methods) {
      if (byMethod.has(m)) throw errors.FMCP_ERR_ROUTE_DUPLICATE(m, path, plugin);
    }
    for (const m of methods) byMethod.set(m, route);
    if (methods.includes('GET') && !byMethod.has('HEAD')) byMethod.set('HEAD', route);
    this.all.push(route);
    return route;
  }

  routes(): readonly Route[] {
    return this.all;
  }

  find(method: string, path: string): RouteMatch {
    const exact = this.exact.get(path);
    if (exact) return pick(exact, method, NO_PARAMS);
    const segments = path.split('/');
    segments.shift();
    const list = this.patterns.get(segments.length);
    if (!list) return { kind: 'none' };
    for (const pattern of list) {
      const params = matchPattern(pattern, segments);
      if (params === undefined) continue;
      if (params === null) return { kind: 'bad', reason: 'a path segment is not valid percent-encoding' };
      return pick(pattern.byMethod, method, params);
    }
    return { kind: 'none' };
  }
}

function pick(byMethod: Map<string, Route>, method: string, params: Record<string, string>): RouteMatch {
  const route = byMethod.get(method);
  if (route) return { kind: 'found', route, params };
  return { kind: 'method', allowed: [...byMethod.keys()], routes: [...new Set(byMethod.values())] };
}

/** undefined: no match; null: matched but a parameter is not decodable */
function matchPattern(pattern: Pattern, segments: string[]): Record<string, string> | undefined | null {
  const expected = pattern.segments;
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i]!;
    if (want.charCodeAt(0) !== 58 /* : */ && want !== segments[i]) return undefined;
  }
  const params: Record<string, string> = {};
  for (const i of pattern.paramAt) {
    const raw = segments[i]!;
    if (raw === '') return undefined;
    if (raw.includes('%')) {
      try {
        params[expected[i]!.slice(1)] = decodeURIComponent(raw);
      } catch {
        return null;
      }
    } else {
      params[expected[i]!.slice(1)] = raw;
    }
  }
  return params;
}
