import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { errors, isLoopback, type RequestContext } from '../../core/index.js';

export const SESSION_COOKIE = 'fmcp_console';
/** the header every state-changing API call carries: a cross-site page cannot send it without CORS */
export const CHANGE_HEADER = 'x-fluidmcp-console';
const SESSION_SECONDS = 12 * 60 * 60;

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Who may use the console: loopback callers only, unless an admin token is set; then every API call
 * needs it (Bearer, or the session cookie the login form sets). State changes also need same-origin.
 */
export class ConsoleAccess {
  private readonly tokenDigest: Buffer | undefined;
  private readonly sessionValue: string | undefined;

  constructor(adminToken: string | undefined) {
    if (adminToken !== undefined) {
      this.tokenDigest = digest(adminToken);
      // stateless: the cookie is a MAC of the token, so replicas with one token accept each other's sessions
      this.sessionValue = createHmac('sha256', adminToken).update('fluidmcp console session v1').digest('base64url');
    }
  }

  get tokenRequired(): boolean {
    return this.tokenDigest !== undefined;
  }

  /** The page and its files: loopback only without a token; with a token anyone may load the login form. */
  page(ctx: RequestContext): void {
    if (!this.tokenRequired) this.loopbackOnly(ctx);
  }

  /**
   * Any /api call: never from another origin, even a loopback one (the gateway's CORS lets loopback
   * origins use the MCP routes, but another local page must not read the log or the servers' settings).
   */
  api(ctx: RequestContext): void {
    this.sameOrigin(ctx, 'Console API calls');
    if (!this.tokenRequired) {
      this.loopbackOnly(ctx);
      return;
    }
    if (this.signedIn(ctx)) return;
    ctx.res.setHeader('www-authenticate', 'Bearer realm="fluidmcp-console"');
    throw errors.FMCP_ERR_UNAUTHORIZED(
      'The console API needs the admin token: send "Authorization: Bearer <admin token>", or sign in on the console page',
    );
  }

  /** A state-changing call: same origin, with the console's header. */
  change(ctx: RequestContext): void {
    const headers = ctx.req.headers;
    if (headers[CHANGE_HEADER] !== '1') {
      throw errors.FMCP_ERR_FORBIDDEN(`State-changing console calls need the header "${CHANGE_HEADER}: 1" (it keeps other sites from sending them)`);
    }
    this.sameOrigin(ctx, 'State-changing console calls');
  }

  /** 403 for a browser request from another origin (by Sec-Fetch-Site, then Origin against Host). */
  private sameOrigin(ctx: RequestContext, what: string): void {
    const headers = ctx.req.headers;
    const site = headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw errors.FMCP_ERR_FORBIDDEN(`${what} must come from the console's own origin (Sec-Fetch-Site is "${site}")`);
    }
    const origin = headers.origin;
    if (origin !== undefined) {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host === undefined || host.toLowerCase() !== String(headers.host ?? '').toLowerCase()) {
        throw errors.FMCP_ERR_FORBIDDEN(`${what} must come from the console's own origin, not "${origin}"`);
      }
    }
  }

  /** True when the presented admin token (Bearer or cookie) is right. */
  signedIn(ctx: RequestContext): boolean {
    if (!this.tokenDigest) return true;
    const header = ctx.req.headers.authorization;
    const bearer = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header)?.[1] : undefined;
    if (bearer !== undefined && timingSafeEqual(digest(bearer), this.tokenDigest)) return true;
    const cookie = readCookie(ctx, SESSION_COOKIE);
    return cookie !== undefined && timingSafeEqual(digest(cookie), digest(this.sessionValue!));
  }

  /** Checks a token typed into the login form; the Set-Cookie value for a right one. */
  login(token: string, secure: boolean): string | undefined {
    if (!this.tokenDigest || !timingSafeEqual(digest(token), this.tokenDigest)) return undefined;
    return `${SESSION_COOKIE}=${this.sessionValue}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_SECONDS}${secure ? '; Secure' : ''}`;
  }

  logoutCookie(secure: boolean): string {
    return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
  }

  private loopbackOnly(ctx: RequestContext): void {
    const remote = ctx.req.socket.remoteAddress ?? '';
    const host = hostName(String(ctx.req.headers.host ?? ''));
    const remoteLoopback = isLoopback(remote);
    if (!remoteLoopback || !(host === 'localhost' || isLoopback(host))) {
      throw errors.FMCP_ERR_FORBIDDEN(
        'The console answers only on loopback (a browser on this machine at http://localhost): start the gateway with --admin-token <token> to open it to other hosts, or --no-console to turn it off',
      );
    }
  }
}

function hostName(host: string): string {
  const lower = host.toLowerCase();
  if (lower.startsWith('[')) return lower.slice(0, lower.indexOf(']') + 1);
  const colon = lower.lastIndexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

function readCookie(ctx: RequestContext, name: string): string | undefined {
  const header = ctx.req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
