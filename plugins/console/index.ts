import {
  CHANNELS,
  SERVER_CONTROL,
  definePlugin,
  errors,
  type Plugin,
  type RequestContext,
} from '../../core/index.js';
import { ConsoleAccess } from './access.js';
import { ConsoleApi } from './api.js';
import { loadAssets } from './assets.js';
import { LiveFeeds } from './live.js';

export interface WebConsoleOptions {
  /**
   * with a token, the console and /api answer on any allowed Host and need it (Bearer, or the cookie
   * the login form sets); without one they answer loopback callers only
   */
  adminToken?: string;
}

/**
 * A web console at `/` and its JSON API under `/api/`: servers and their state, live; tools, resources
 * and prompts through the gateway; tool calls; restarts; activity and the log. One client of /api.
 */
export function webConsole(options: WebConsoleOptions = {}): Plugin {
  if (options.adminToken !== undefined && options.adminToken.length < 16) {
    throw errors.FMCP_ERR_CONFIG_INVALID('console options', 'adminToken', 'the admin token must be at least 16 characters long: use a random one, such as the output of `openssl rand -hex 32`');
  }
  return definePlugin({
    name: 'console',
    register(api) {
      const access = new ConsoleAccess(options.adminToken);
      const consoleApi = new ConsoleApi({
        servers: api.servers,
        strategies: api.authStrategies,
        channels: () => api.tryResolve(CHANNELS),
        control: () => api.tryResolve(SERVER_CONTROL),
      });
      const feeds = new LiveFeeds(
        api.events,
        () => api.servers.list().map((s) => consoleApi.summary(s)),
        (name) => consoleApi.summary(consoleApi.server(name)),
      );
      const assets = loadAssets();
      const secure = (api.kernel.options.publicUrl ?? '').startsWith('https:');

      for (const [path, asset] of assets) {
        api.route({
          method: 'GET',
          path,
          handler: (ctx) => {
            access.page(ctx);
            ctx.res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...asset.headers });
            ctx.res.end(ctx.method === 'HEAD' ? undefined : asset.body);
          },
        });
      }

      const read = (path: string, handler: (ctx: RequestContext) => void | Promise<void>): void =>
        api.route({ method: 'GET', path, handler: (ctx) => (access.api(ctx), handler(ctx)) });
      const change = (path: string, handler: (ctx: RequestContext) => void | Promise<void>, bodyLimit?: number): void =>
        api.route({ method: 'POST', path, bodyLimit, handler: (ctx) => (access.api(ctx), access.change(ctx), handler(ctx)) });

      read('/api/session', (ctx) => sendNoStore(ctx, 200, { signedIn: true, tokenRequired: access.tokenRequired }));
      read('/api/servers', (ctx) => consoleApi.list(ctx));
      read('/api/servers/:name', (ctx) => consoleApi.detail(ctx));
      read('/api/servers/:name/tools', (ctx) => consoleApi.listOf(ctx, 'tools'));
      read('/api/servers/:name/resources', (ctx) => consoleApi.listOf(ctx, 'resources'));
      read('/api/servers/:name/prompts', (ctx) => consoleApi.listOf(ctx, 'prompts'));
      read('/api/events', (ctx) => feeds.openEvents(ctx));
      read('/api/logs', (ctx) => feeds.openLogs(ctx));
      change('/api/servers/:name/tools/:tool', (ctx) => consoleApi.callTool(ctx));
      change('/api/servers/:name/restart', (ctx) => consoleApi.restart(ctx));
      change('/api/servers/:name/instances/:id/stop', (ctx) => consoleApi.stopInstance(ctx));

      // the login form: no token needed to try one, but same-origin like every change
      api.route({
        method: 'POST',
        path: '/api/login',
        bodyLimit: 4096,
        handler: (ctx) => {
          access.change(ctx);
          if (!access.tokenRequired) {
            sendNoStore(ctx, 200, { signedIn: true, tokenRequired: false });
            return;
          }
          const cookie = access.login(readToken(ctx), secure);
          if (!cookie) {
            api.log.warn({ remote: ctx.req.socket.remoteAddress }, 'console sign-in with a wrong admin token');
            throw errors.FMCP_ERR_UNAUTHORIZED('That is not the admin token this gateway was started with (--admin-token)');
          }
          sendNoStore(ctx, 200, { signedIn: true, tokenRequired: true }, { 'set-cookie': cookie });
        },
      });
      api.route({
        method: 'POST',
        path: '/api/logout',
        handler: (ctx) => {
          access.change(ctx);
          sendNoStore(ctx, 200, { signedIn: false, tokenRequired: access.tokenRequired }, { 'set-cookie': access.logoutCookie(secure) });
        },
      });

      api.addHook('onStart', () => feeds.start());
      api.addHook('preClose', () => feeds.stop());
    },
  });
}

function sendNoStore(ctx: RequestContext, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  ctx.res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  ctx.res.end(text);
}

function readToken(ctx: RequestContext): string {
  const text = ctx.body?.toString('utf8') ?? '';
  const type = String(ctx.req.headers['content-type'] ?? '');
  let token: unknown;
  if (type.includes('application/x-www-form-urlencoded')) token = new URLSearchParams(text).get('token');
  else {
    try {
      token = (JSON.parse(text) as { token?: unknown } | null)?.token;
    } catch {
      throw errors.FMCP_ERR_BAD_REQUEST('The body of /api/login is not valid JSON: send {"token": "<admin token>"}');
    }
  }
  if (typeof token !== 'string' || token === '') throw errors.FMCP_ERR_BAD_REQUEST('Send the admin token as {"token": "<admin token>"}');
  return token;
}

export const plugin: Plugin = webConsole();
export default webConsole;
