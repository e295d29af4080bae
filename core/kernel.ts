import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo } from 'node:net';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { Logger } from 'pino';
import {
  ANONYMOUS,
  type AuthStrategy,
  type EventBus,
  type RequestContext,
  type ServerCatalog,
  type ServerDefinition,
  type StrategyRegistry,
  type TransportFactory,
} from './contracts.js';
import { errors, FluidError } from './errors.js';
import { KernelEvents } from './events.js';
import { emptyHookTable, isHookName, applicationHookNames, requestHookNames, type HookName, type HookSignatures, type HookTable } from './hooks.js';
import { createLogger } from './logger.js';
import { missingNodeFlags } from './node-flags.js';
import { authKey } from './metadata.js';
import { orderPlugins, validatePlugin, type Plugin } from './plugin.js';
import { KeyedRegistry } from './registry.js';
import { Router, type RouteOptions } from './router.js';
import { clientErrorAnswer, discardBody, readBody, sendError, sendJson } from './http.js';
import { answerOptions, isPreflight, setCorsHeaders } from './cors.js';
import { Catalog } from './catalog.js';
import { Context } from './context.js';
import { HostGuard, urlHost } from './host-guard.js';
import { AUTH_STRATEGIES, KERNEL, LOGGER, ROUTER, SERVERS, TRANSPORTS } from './core-tokens.js';
import { provide, resolve, tryResolve, type Token } from './tokens.js';
import type { KernelOptions } from './kernel-options.js';

export type { KernelOptions } from './kernel-options.js';

const REPLICA_ID = /^[A-Za-z0-9_-]{1,32}$/;

export type KernelState = 'idle' | 'starting' | 'started' | 'stopping' | 'stopped';

/** What a plugin sees while it registers: the kernel, scoped to the plugin's name. */
export interface PluginApi {
  readonly name: string;
  readonly kernel: Kernel;
  readonly log: Logger;
  readonly container: DependencyContainer;
  readonly servers: ServerCatalog;
  readonly transports: StrategyRegistry<TransportFactory>;
  readonly authStrategies: StrategyRegistry<AuthStrategy>;
  /** the kernel's event bus; listeners added here are named after the plugin in error logs */
  readonly events: EventBus;
  route(options: RouteOptions): void;
  addHook<K extends HookName>(name: K, fn: HookSignatures[K]): void;
  provide<T>(token: Token<T>, value: T): void;
  resolve<T>(token: Token<T>): T;
  tryResolve<T>(token: Token<T>): T | undefined;
  /** adds fields to a server's entry in GET /health */
  addHealth(contributor: (server: ServerDefinition) => Record<string, unknown>): void;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** how long a refused (413) body is read and discarded before the answer, at most */
const DISCARD_BODY_MS = 10_000;

/** The microkernel: HTTP, routes, hooks, plugins, DI. It knows no protocol beyond HTTP. */
export class Kernel {
  readonly container: DependencyContainer;
  readonly log: Logger;
  readonly router = new Router();
  readonly options: Readonly<KernelOptions>;
  readonly servers = new Catalog();
  readonly transports = new KeyedRegistry<TransportFactory>('Transport');
  readonly authStrategies = new KeyedRegistry<AuthStrategy>('Auth strategy');
  readonly events: KernelEvents;

  private readonly plugins: Plugin[] = [];
  private readonly hooks: HookTable = emptyHookTable();
  private readonly health: ((server: ServerDefinition) => Record<string, unknown>)[] = [];
  private httpServer: Server | undefined;
  private stateValue: KernelState = 'idle';
  private stopping: Promise<void> | undefined;
  private readonly hostGuard: HostGuard;
  private readonly bodyLimit: number;
  /** responses not yet finished: told to close their connection when the kernel stops */
  private readonly active = new Set<ServerResponse>();
  /** one 'close' listener shared by every response (`this` is the response): no closure per request */
  private readonly untrack: (this: ServerResponse) => void = ((active: Set<ServerResponse>) =>
    function untrack(this: ServerResponse): void {
      active.delete(this);
    })(this.active);

  constructor(options: KernelOptions = {}) {
    if (options.replicaId !== undefined && !REPLICA_ID.test(options.replicaId)) {
      throw errors.FMCP_ERR_CONFIG_INVALID('kernel options', 'replicaId', `expected 1-32 letters, digits, "-" or "_", got "${options.replicaId}"`);
    }
    this.options = { port: 8099, host: '127.0.0.1', ...options };
    this.container = rootContainer.createChildContainer();
    this.events = new KernelEvents((event, plugin, err) =>
      this.log.error({ plugin, event, error: (err as Error)?.message ?? String(err) }, 'event listener failed'));
    // log.line lets an admin plugin show the log as written (redacted); a failing listener is not logged again
    let tapping = false;
    const tap = (line: string): void => {
      if (tapping || !this.events.listening('log.line')) return;
      tapping = true;
      try {
        this.events.emit('log.line', { line });
      } finally {
        tapping = false;
      }
    };
    this.log = options.logger ?? createLogger({ level: options.logLevel, destination: options.logDestination, tap });
    this.bodyLimit = options.bodyLimit ?? 4 * 1024 * 1024;
    this.hostGuard = new HostGuard(options.host ?? '', options.allowedHosts ?? [], options.allowedOrigins ?? []);
    for (const def of options.servers ?? []) this.servers.add(def);
    provide(this.container, KERNEL, this);
    provide(this.container, LOGGER, this.log);
    provide(this.container, ROUTER, this.router);
    provide(this.container, SERVERS, this.servers);
    provide(this.container, TRANSPORTS, this.transports);
    provide(this.container, AUTH_STRATEGIES, this.authStrategies);
  }

  get state(): KernelState {
    return this.stateValue;
  }

  /** Adds a plugin. Order does not matter: dependencies are checked and sorted at start(). */
  use(plugin: Plugin): this {
    validatePlugin(plugin, 'kernel.use()');
    if (this.stateValue !== 'idle') throw errors.FMCP_ERR_KERNEL_STATE(`use plugin "${plugin.name}"`, this.stateValue);
    if (this.plugins.some((p) => p.name === plugin.name)) throw errors.FMCP_ERR_PLUGIN_DUPLICATE(plugin.name);
    this.plugins.push(plugin);
    return this;
  }

  /** Adds servers to serve; only before start(). */
  addServers(defs: readonly ServerDefinition[]): this {
    if (this.stateValue !== 'idle') throw errors.FMCP_ERR_KERNEL_STATE('add servers', this.stateValue);
    for (const def of defs) this.servers.add(def);
    return this;
  }

  resolve<T>(token: Token<T>): T {
    return resolve(this.container, token);
  }

  tryResolve<T>(token: Token<T>): T | undefined {
    return tryResolve(this.container, token);
  }

  /** The address the gateway listens on, once started. */
  address(): { host: string; port: number } {
    const addr = this.httpServer?.address() as AddressInfo | null | undefined;
    if (!addr) throw errors.FMCP_ERR_KERNEL_STATE('read the address', this.stateValue);
    return { host: addr.address, port: addr.port };
  }

  /** The URL users and providers reach the gateway at: publicUrl, else one a browser opens, from host and port. */
  publicUrl(): string {
    if (this.options.publicUrl) return this.options.publicUrl.replace(/\/+$/, '');
    const { port } = this.address();
    return `http://${urlHost(this.options.host ?? '127.0.0.1')}:${port}`;
  }

  async start(): Promise<void> {
    if (this.stateValue !== 'idle') throw errors.FMCP_ERR_KERNEL_STATE('start', this.stateValue);
    this.stateValue = 'starting';
    try {
      await this.registerAndClaim();
      for (const server of this.servers.list()) {
        if (!server.auth) continue;
        const strategy = this.authStrategies.get(server.auth)!;
        if (strategy.setup) await this.runPluginStep(this.authStrategies.owner(server.auth)!, 'setup', () => strategy.setup!(server));
      }
      this.router.add({ method: 'GET', path: '/health', handler: (ctx) => this.sendHealth(ctx) }, 'core');
      for (const hook of this.hooks.onStart) await this.runPluginStep(hook.plugin, 'onStart', hook.fn);
      await this.listen();
      const missing = missingNodeFlags();
      if (missing.length > 0) {
        this.log.info({ missing }, `Node runs without ${missing.join(' ')}, the flags the gateway's memory and speed figures are measured with: start node with them, or put them in NODE_OPTIONS (README, Performance)`);
      }
      this.stateValue = 'started';
      for (const hook of this.hooks.onReady) await this.runPluginStep(hook.plugin, 'onReady', hook.fn);
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  /**
   * What start() checks before it starts anything: the plugins register (dependencies, duplicates) and
   * every server is claimed by a transport and an auth strategy, each validating it. No strategy setup,
   * no hook, no server process, no port. Throws start()'s error; the kernel is spent after it (stopped).
   */
  async check(): Promise<void> {
    if (this.stateValue !== 'idle') throw errors.FMCP_ERR_KERNEL_STATE('check', this.stateValue);
    this.stateValue = 'starting';
    try {
      await this.registerAndClaim();
    } finally {
      this.stateValue = 'stopped';
    }
  }

  private async registerAndClaim(): Promise<void> {
    for (const plugin of orderPlugins(this.plugins)) {
      await this.runPluginStep(plugin.name, 'register', () => plugin.register(this.apiFor(plugin.name)));
    }
    this.claimServers();
  }

  /** Stops accepting, lets preClose hooks end streams, closes connections, then onClose hooks (LIFO). */
  stop(): Promise<void> {
    if (this.stateValue === 'idle' || this.stateValue === 'stopped') {
      this.stateValue = 'stopped';
      return Promise.resolve();
    }
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stateValue = 'stopping';
    const bound = this.options.closeTimeout ?? 8000;
    const deadline = Date.now() + bound;
    const server = this.httpServer;
    // stop listening but keep serving open connections until preClose hooks drained them: http.Server.close()
    // would also cut idle keep-alive sockets at once, resetting clients whose next request is on its way
    const closed = server ? new Promise<void>((r) => NetServer.prototype.close.call(server, () => r())) : Promise.resolve();
    // answers still to come end their keep-alive connection, so no client sends into a socket about to close
    for (const res of this.active) if (!res.headersSent) res.setHeader('connection', 'close');
    for (const hook of [...this.hooks.preClose].reverse()) await this.runBounded(hook.plugin, 'preClose', hook.fn, deadline);
    if (server) {
      server.closeIdleConnections();
      const left = Math.max(0, deadline - Date.now());
      const timer = setTimeout(() => server.closeAllConnections(), Math.min(left, 2000));
      await closed;
      clearTimeout(timer);
    }
    const onCloseDeadline = Date.now() + bound;
    for (const hook of [...this.hooks.onClose].reverse()) await this.runBounded(hook.plugin, 'onClose', hook.fn, onCloseDeadline);
    this.stateValue = 'stopped';
  }

  private async runBounded(plugin: string, step: string, fn: () => void | Promise<void>, deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(() => {
        this.log.warn({ plugin, step }, 'stop step did not finish in time; going on');
        r();
      }, Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([Promise.resolve().then(fn), timeout]);
    } catch (err) {
      this.log.error({ plugin, step, error: (err as Error).message }, 'stop step failed');
    } finally {
      clearTimeout(timer);
    }
  }

  private async runPluginStep(plugin: string, step: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof FluidError) throw err;
      throw errors.FMCP_ERR_PLUGIN_FAILED(plugin, step, err as Error);
    }
  }

  private apiFor(name: string): PluginApi {
    const kernel = this;
    return {
      name,
      kernel,
      log: kernel.log.child({ plugin: name }),
      container: kernel.container,
      servers: kernel.servers,
      transports: wrapRegistry(kernel.transports, name),
      authStrategies: wrapRegistry(kernel.authStrategies, name),
      events: {
        on: (event, listener) => kernel.events.on(event, listener, name),
        emit: (event, data) => kernel.events.emit(event, data),
        listening: (event) => kernel.events.listening(event),
      },
      route: (options) => void kernel.router.add(options, name),
      addHook: (hook, fn) => kernel.addHook(hook, fn, name),
      provide: (token, value) => provide(kernel.container, token, value),
      resolve: (token) => resolve(kernel.container, token),
      tryResolve: (token) => tryResolve(kernel.container, token),
      addHealth: (contributor) => void kernel.health.push(contributor),
    };
  }

  addHook<K extends HookName>(name: K, fn: HookSignatures[K], plugin = 'app'): void {
    if (!isHookName(name)) throw errors.FMCP_ERR_HOOK_UNKNOWN(name, [...applicationHookNames, ...requestHookNames].join(', '));
    if (this.stateValue !== 'idle' && this.stateValue !== 'starting') throw errors.FMCP_ERR_HOOK_AFTER_START(name);
    (this.hooks[name] as { fn: HookSignatures[K]; plugin: string }[]).push({ fn, plugin });
  }

  /** Hands each server to the transport and auth strategy that claim it; unclaimed servers are errors. */
  private claimServers(): void {
    for (const server of this.servers.list()) {
      const transport = this.transports.values().find((t) => t.claims(server.entry));
      if (!transport) {
        const what = server.entry.url ? `url ${server.entry.url}` : `command ${server.entry.command}`;
        throw errors.FMCP_ERR_STRATEGY_MISSING(`${server.source}: mcpServers.${server.name}`, 'transport for', what, this.transports.keys().join(', ') || 'none');
      }
      server.transport = transport.kind;
      if (transport.validate) this.runOwned(this.transports.owner(transport.kind), 'validate', () => transport.validate!(server));
      const key = authKey(server.entry);
      if (key) {
        const strategy = this.authStrategies.get(key);
        if (!strategy) {
          throw errors.FMCP_ERR_STRATEGY_MISSING(`${server.source}: mcpServers.${server.name}.auth`, 'auth', key, this.authStrategies.keys().join(', ') || 'none');
        }
        server.auth = key;
        if (strategy.validate) this.runOwned(this.authStrategies.owner(key), 'validate', () => strategy.validate!(server));
      }
    }
  }

  /** Runs a plugin's synchronous step; an error that is not a FluidError is wrapped with the plugin's name. */
  private runOwned<T>(plugin: string | undefined, step: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof FluidError) throw err;
      throw errors.FMCP_ERR_PLUGIN_FAILED(plugin ?? 'unknown', step, err as Error);
    }
  }

  private listen(): Promise<void> {
    const headersTimeout = this.options.headersTimeout ?? 10_000;
    const server = createServer({
      requestTimeout: this.options.requestTimeout ?? 30_000,
      headersTimeout,
      // node checks both timeouts this often (its default, 30 s, would let a 10 s limit run to 40 s)
      connectionsCheckingInterval: Math.min(headersTimeout, 30_000),
      keepAliveTimeout: 5_000,
    });
    server.on('request', (req, res) => void this.handle(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (socket.writable && !socket.destroyed) socket.end(clientErrorAnswer(err, server));
      else socket.destroy();
    });
    this.httpServer = server;
    const { port, host } = this.options;
    return new Promise((resolvePromise, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const why = err.code === 'EADDRINUSE' ? 'the port is already in use (choose another with --port)' : err.code === 'EACCES' ? 'permission denied (choose a port above 1023)' : err.message;
        reject(errors.FMCP_ERR_LISTEN(host, port, why));
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolvePromise();
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const ctx = new Context(req, res, path, q === -1 ? '' : url.slice(q + 1), this.log);
    const hooks = this.hooks;
    if (this.stateValue === 'stopping') res.setHeader('connection', 'close');
    this.active.add(res);
    res.on('close', this.untrack);
    if (hooks.onResponse.length > 0) res.once('finish', () => void this.runRequestHooks('onResponse', ctx).catch(() => undefined));
    // every answer: never sniffed as another type
    res.setHeader('x-content-type-options', 'nosniff');
    try {
      const refusal = this.hostGuard.refusal(req);
      if (refusal) throw errors.FMCP_ERR_FORBIDDEN(refusal);
      const origin = req.headers.origin;
      if (origin !== undefined) setCorsHeaders(res, origin, []);
      if (hooks.onRequest.length > 0 && (await this.runRequestHooks('onRequest', ctx))) return;
      const match = this.router.find(ctx.method, path);
      if (match.kind === 'none') throw errors.FMCP_ERR_NOT_FOUND(ctx.method, path);
      if (match.kind === 'bad') throw errors.FMCP_ERR_BAD_REQUEST(`Invalid path ${path}: ${match.reason}`);
      if (match.kind === 'method') {
        if (origin !== undefined) setCorsHeaders(res, origin, match.routes);
        if (ctx.method === 'OPTIONS') return answerOptions(res, match.allowed, match.routes, isPreflight(req));
        const allowed = match.allowed.join(', ');
        throw Object.assign(errors.FMCP_ERR_METHOD_NOT_ALLOWED(ctx.method, path, allowed), { headers: { allow: allowed } });
      }
      const route = match.route;
      if (origin !== undefined && route.cors) setCorsHeaders(res, origin, [route]);
      ctx.params = match.params;
      ctx.route = route.path;
      if (route.guard !== undefined) {
        const server = this.servers.get(match.params[route.guard] ?? '');
        if (server?.auth) {
          try {
            ctx.identity = await this.authStrategies.get(server.auth)!.authenticate(ctx, server);
          } catch (err) {
            if (err instanceof FluidError) throw err;
            throw errors.FMCP_ERR_PLUGIN_FAILED(this.authStrategies.owner(server.auth) ?? 'unknown', `authenticate (server "${server.name}")`, err as Error);
          }
        }
      }
      if (route.readBody ?? BODY_METHODS.has(ctx.method)) ctx.body = await readBody(req, route.bodyLimit ?? this.bodyLimit);
      if (hooks.preHandler.length > 0 && (await this.runRequestHooks('preHandler', ctx))) return;
      await route.handler(ctx);
    } catch (err) {
      await this.handleError(ctx, err);
    }
  }

  /** Runs request hooks in order; true when one of them already answered. */
  private async runRequestHooks(name: 'onRequest' | 'preHandler' | 'onResponse', ctx: RequestContext): Promise<boolean> {
    for (const hook of this.hooks[name]) {
      await hook.fn(ctx);
      if (name !== 'onResponse' && ctx.res.writableEnded) return true;
    }
    return false;
  }

  private async handleError(ctx: RequestContext, err: unknown): Promise<void> {
    const error = err instanceof FluidError ? err : errors.FMCP_ERR_INTERNAL((err as Error)?.message ?? String(err));
    if (!(err instanceof FluidError)) this.log.error({ err }, 'request failed');
    for (const hook of this.hooks.onError) {
      try {
        await hook.fn(ctx, error);
      } catch (hookErr) {
        this.log.error({ plugin: hook.plugin, error: (hookErr as Error).message }, 'onError hook failed');
      }
    }
    const res = ctx.res;
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const extra = (error as FluidError & { headers?: Record<string, string> }).headers;
    if (error.statusCode === 413) {
      res.setHeader('connection', 'close');
      // let a client that is still sending finish (up to a bound), so it reads the 413 instead of EPIPE
      await discardBody(ctx.req, 4 * this.bodyLimit, DISCARD_BODY_MS);
      if (res.headersSent || res.destroyed) return;
    }
    sendError(res, error, extra);
  }

  private sendHealth(ctx: RequestContext): void {
    const servers: Record<string, Record<string, unknown>> = {};
    for (const server of this.servers.list()) {
      const entry: Record<string, unknown> = { transport: server.transport };
      if (server.auth) entry.auth = server.auth;
      for (const contribute of this.health) Object.assign(entry, contribute(server));
      servers[server.name] = entry;
    }
    // "degraded" when a server is failed: the gateway itself still serves the others (so 200)
    const failed = Object.keys(servers).filter((name) => servers[name]!.state === 'failed');
    const status = this.stateValue !== 'started' ? this.stateValue : failed.length > 0 ? 'degraded' : 'ok';
    sendJson(ctx.res, 200, failed.length > 0 ? { status, failed, servers } : { status, servers });
  }
}

function wrapRegistry<T>(registry: StrategyRegistry<T>, plugin: string): StrategyRegistry<T> {
  return {
    register: (key, value) => registry.register(key, value, plugin),
    get: (key) => registry.get(key),
    keys: () => registry.keys(),
    values: () => registry.values(),
    owner: (key) => registry.owner(key),
  };
}

/** Creates a kernel with its own DI container: two kernels in one process share nothing. */
export function createKernel(options: KernelOptions = {}): Kernel {
  return new Kernel(options);
}

