import type { IncomingMessage } from 'node:http';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
/** an address literal of 127.0.0.0/8: no DNS name, so no rebinding, and what the gateway prints for such a --host */
const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const MAPPED_LOOPBACK_HEX = /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/;

/**
 * DNS-rebinding protection: a browser's Origin must be a loopback origin, an allowed host's, or one
 * allowed by name; when the gateway listens on loopback, the Host header must be a loopback name or
 * allowed (`*` allows any).
 */
export class HostGuard {
  private readonly allowedHosts: Set<string>;
  private readonly allowedOrigins: Set<string>;
  /** the Host check applies: the gateway listens on loopback and no `*` is allowed (worked out once) */
  private readonly checksHost: boolean;

  constructor(
    listenHost: string,
    allowedHosts: readonly string[],
    allowedOrigins: readonly string[],
  ) {
    this.allowedHosts = new Set(allowedHosts.map((h) => h.toLowerCase()));
    this.allowedOrigins = new Set(allowedOrigins.map((o) => o.toLowerCase()));
    this.checksHost = isLoopback(listenHost) && !this.allowedHosts.has('*');
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
      if (host === undefined || (!isLoopbackName(stripPort(host)) && !this.allowedHosts.has(stripPort(host)))) {
        return `Origin "${origin}" is not allowed: start the gateway with --allowed-origin ${origin} to allow it`;
      }
    }
    if (!this.checksHost) return undefined;
    const hostHeader = req.headers.host;
    if (hostHeader === undefined) return undefined;
    const name = stripPort(hostHeader.toLowerCase());
    if (isLoopbackName(name) || this.allowedHosts.has(name)) return undefined;
    return `Host "${hostHeader}" is not allowed: the gateway listens on loopback; add --allowed-host ${name} to accept it`;
  }
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * What only this machine reaches: localhost, 127.0.0.0/8 (also IPv4-mapped, ::ffff:127.x.x.x) and ::1,
 * with or without IPv6 brackets, in any case. Address literals only: a DNS name such as 127.example.com is not.
 */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  // URLs write ::ffff:127.0.0.1 as ::ffff:7f00:1
  return h === 'localhost' || h === '::1' || LOOPBACK_V4.test(h.startsWith('::ffff:') ? h.slice(7) : h) || MAPPED_LOOPBACK_HEX.test(h);
}

/** isLoopback, with the names every request carries looked up first (no regex on the usual path) */
function isLoopbackName(name: string): boolean {
  return LOOPBACK_HOSTS.has(name) || isLoopback(name);
}

/** 0.0.0.0, ::, 0 and the like: a bind to every interface. */
export function isAnyAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0' || h === '0.0.0.0' || (h.includes(':') && /^[0:]+$/.test(h));
}

/**
 * The host part of a URL a person can open for a bind address: localhost for the default and for
 * every-interface binds, an IPv6 literal in brackets, anything else as given.
 */
export function urlHost(host: string): string {
  if (host === '' || host === 'localhost' || host === '127.0.0.1' || isAnyAddress(host)) return 'localhost';
  const h = host.replace(/^\[|\]$/g, '');
  return h.includes(':') ? `[${h.replace(/%/g, '%25')}]` : h;
}
