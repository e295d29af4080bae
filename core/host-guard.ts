import type { IncomingMessage } from 'node:http';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * DNS-rebinding protection: a browser's Origin must be a loopback origin, an allowed host's, or one
 * allowed by name; when the gateway listens on loopback, the Host header must be a loopback name or
 * allowed (`*` allows any).
 */
export class HostGuard {
  private readonly allowedHosts: Set<string>;
  private readonly allowedOrigins: Set<string>;

  constructor(
    private readonly listenHost: string,
    allowedHosts: readonly string[],
    allowedOrigins: readonly string[],
  ) {
    this.allowedHosts = new Set(allowedHosts.map((h) => h.toLowerCase()));
    this.allowedOrigins = new Set(allowedOrigins.map((o) => o.toLowerCase()));
  }

  /** Why the request is refused (with what to do), or undefined when it may go on. */
  refusal(req: IncomingMessage): string | undefined {
    const origin = req.headers.origin;
    // "null" is the opaque origin of sandboxed frames and file pages, which any site can produce
    if (origin !== undefined && !this.allowedOrigins.has(origin.toLowerCase())) {
      let host: string | undefined;
      try {
        host = new URL(origin).host.toLowerCase();
      } catch {
        if (origin !== 'null') return `Origin "${origin}" is not a valid origin`;
      }
      if (host === undefined || (!LOOPBACK_HOSTS.has(stripPort(host)) && !this.allowedHosts.has(stripPort(host)))) {
        return `Origin "${origin}" is not allowed: start the gateway with --allowed-origin ${origin} to allow it`;
      }
    }
    if (!isLoopback(this.listenHost) || this.allowedHosts.has('*')) return undefined;
    const hostHeader = req.headers.host;
    if (hostHeader === undefined) return undefined;
    const name = stripPort(hostHeader.toLowerCase());
    if (LOOPBACK_HOSTS.has(name) || this.allowedHosts.has(name)) return undefined;
    return `Host "${hostHeader}" is not allowed: the gateway listens on loopback; add --allowed-host ${name} to accept it`;
  }
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}
