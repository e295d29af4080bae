import { ANONYMOUS, CHANNELS, EVENT_STREAMS, REPLICA_DIRECTORY, SERVER_CONTROL, definePlugin, type Plugin, type EventStreamFactory, type RouteCors } from '../../core/index.js';
import { Channels } from './channels.js';
import { ServerControls } from './control.js';
import { PROXY_DEFAULTS } from './defaults.js';
import { Dispatcher } from './dispatcher.js';
import { InstancePool } from './instance-pool.js';
import { ModernEndpoint } from './modern-endpoint.js';
import { EXCLUSIVE_WAIT_MS, ExclusiveCalls } from './exclusive-calls.js';
import { MrtrBridge } from './mrtr-bridge.js';
import { RetryForwarder } from './replica-forward.js';
import { Subscriptions } from './subscriptions.js';
import { StreamableHttpEndpoint } from './streamable-http.js';
import { ToolRoutes } from './tool-routes.js';

export interface ProxyOptions {
  /** a call the server does not answer ends in a JSON-RPC error after this long (default 60 s) */
  callTimeoutMs?: number;
  /** how long the server has to answer the gateway's initialize (default 30 s) */
  handshakeTimeoutMs?: number;
  /** calls that may wait for a starting server (default 10,000) */
  maxQueued?: number;
  /** most processes per server for distinct tokens or sessions (default 32) */
  maxInstances?: number;
  /** a token's or session's process stops after this long without calls (default 10 min) */
  instanceIdleMs?: number;
  /**
   * at maxInstances, a process with no call in flight and no open stream, idle this long, may be stopped
   * for a new one, ending its sessions (404); when none may, the new one gets 503 with Retry-After (default 60 s)
   */
  instanceEvictIdleMs?: number;
  /** a server that failed for good is started afresh by the first call after this long (default 30 s) */
  retryFailedAfterMs?: number;
  /** a session without calls or an open stream expires after this long (default 30 min) */
  sessionIdleMs?: number;
  /** on stop, how long calls in flight may finish before they get an error (default 3 s) */
  drainMs?: number;
  /**
   * most sessions at once (default 10000). At the limit a new session ends the oldest one that never
   * confirmed its handshake, else the one idle longest past `sessionEvictIdleMs`; when every session is
   * in use, its initialize gets 503 with Retry-After
   */
  maxSessions?: number;
  /** most sessions from one client address, IPv6 by /64, the same way but 429 (default 0: no limit; behind a reverse proxy all clients share its address) */
  maxSessionsPerAddress?: number;
  /** at a session limit, a session without an open stream idle this long may be ended for a new one (default 5 min) */
  sessionEvictIdleMs?: number;
  /** protocol 2026-07-28: `ttlMs` on cacheable results of servers without auth (default 0; servers with auth get 0 and "private") */
  cacheTtlMs?: number;
  /** protocol 2026-07-28: how long a call bridged to MRTR waits for the client's retry (default: callTimeoutMs) */
  inputTimeoutMs?: number;
}

/**
 * `/{name}/mcp`: Streamable HTTP and bare JSON-RPC calls, proxied to each server through the transports,
 * with id rewriting, session routing and timeouts. Provides CHANNELS for other client-facing transports.
 */
/** The MCP headers a browser client sends and reads (2025-11-25 Streamable HTTP, and 2026's mcp-method/mcp-name). */
const MCP_CORS: RouteCors = {
  allowHeaders: ['mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name'],
  exposeHeaders: ['Mcp-Session-Id', 'MCP-Protocol-Version'],
};

export function proxyJsonRpc(options: ProxyOptions = {}): Plugin {
  return definePlugin({
    name: 'proxy-jsonrpc',
    // registered after transport-sse so that its preClose (last in, first out) drains calls before streams end
    after: ['transport-sse'],
    register(api) {
      const callTimeoutMs = options.callTimeoutMs ?? PROXY_DEFAULTS.callTimeoutMs;
      const dispatcher = new Dispatcher(
        api.servers,
        api.transports,
        {
          callTimeoutMs: options.callTimeoutMs ?? PROXY_DEFAULTS.callTimeoutMs,
          handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
          maxQueued: options.maxQueued ?? 10_000,
          maxInstances: options.maxInstances ?? PROXY_DEFAULTS.maxInstances,
          instanceIdleMs: options.instanceIdleMs ?? PROXY_DEFAULTS.instanceIdleMs,
          instanceEvictIdleMs: options.instanceEvictIdleMs ?? PROXY_DEFAULTS.instanceEvictIdleMs,
          retryFailedAfterMs: options.retryFailedAfterMs ?? 30_000,
          sessionIdleMs: options.sessionIdleMs ?? 30 * 60_000,
          maxSessions: options.maxSessions ?? PROXY_DEFAULTS.maxSessions,
          maxSessionsPerAddress: options.maxSessionsPerAddress ?? PROXY_DEFAULTS.maxSessionsPerAddress,
          evictIdleMs: options.sessionEvictIdleMs ?? PROXY_DEFAULTS.sessionEvictIdleMs,
          clientInfo: { name: 'fluidmcp', version: '0.1.0' },
          events: api.events,
          sessionIdPrefix: api.kernel.options.replicaId ? `${api.kernel.options.replicaId}.` : '',
        },
        api.log,
      );
      const channels = new Channels(dispatcher);
      api.provide(CHANNELS, channels);
      api.provide(SERVER_CONTROL, new ServerControls(dispatcher, options.handshakeTimeoutMs ?? 30_000));
      // resolved once found: a DI lookup per request costs more than the rest of the routing
      let streamFactory: EventStreamFactory | undefined;
      const streams = (): EventStreamFactory | undefined => (streamFactory ??= api.tryResolve(EVENT_STREAMS));
      const bridge = new MrtrBridge({ inputTimeoutMs: options.inputTimeoutMs ?? options.callTimeoutMs ?? 60_000, replicaId: api.kernel.options.replicaId ?? '' });
      const subscriptions = new Subscriptions(dispatcher, streams, options.handshakeTimeoutMs ?? 30_000);
      // a retry whose call another replica holds goes there (the directory comes from a store plugin, if any)
      const forwarder = new RetryForwarder(() => api.tryResolve(REPLICA_DIRECTORY), api.events, api.log, {
        lookupTimeoutMs: 5000,
        connectTimeoutMs: 5000,
        // the holder answers within its call timeout, and keeps a stream alive with a comment every 15 s
        idleTimeoutMs: (options.callTimeoutMs ?? PROXY_DEFAULTS.callTimeoutMs) + 15_000,
      });
      const modern = new ModernEndpoint(dispatcher, streams, bridge, subscriptions, {
        cacheTtlMs: options.cacheTtlMs ?? 0,
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
      }, new ExclusiveCalls(dispatcher.pool, {
        processes: 4,
        waitMs: Math.min(EXCLUSIVE_WAIT_MS, callTimeoutMs),
        callTimeoutMs,
      }, api.log), forwarder);
      const endpoint = new StreamableHttpEndpoint(dispatcher, streams, modern);
      const tools = new ToolRoutes(channels);

      api.route({ method: 'POST', path: '/:name/mcp', guard: 'name', cors: MCP_CORS, handler: (ctx) => endpoint.post(ctx) });
      api.route({ method: 'GET', path: '/:name/mcp', guard: 'name', cors: MCP_CORS, handler: (ctx) => endpoint.get(ctx) });
      api.route({ method: 'DELETE', path: '/:name/mcp', guard: 'name', cors: MCP_CORS, readBody: false, handler: (ctx) => endpoint.delete(ctx) });
      api.route({ method: 'GET', path: '/:name/mcp/tools/list', guard: 'name', cors: MCP_CORS, handler: (ctx) => tools.list(ctx) });
      api.route({ method: 'POST', path: '/:name/mcp/tools/call', guard: 'name', cors: MCP_CORS, handler: (ctx) => tools.call(ctx) });

      api.addHealth((server) => {
        const instances = dispatcher.pool.instancesOf(server.name);
        const shared = dispatcher.pool.peek(InstancePool.keyOf(server, ANONYMOUS));
        const out: Record<string, unknown> = { instances: instances.length, sessions: dispatcher.sessions.all().filter((s) => s.server === server).length };
        if (shared) Object.assign(out, shared.status());
        else if (server.auth) out.state = 'on demand (one process per token)';
        // calls in flight on every process of the server (sessions' own and exclusive ones too)
        out.inFlight = instances.reduce((sum, i) => sum + i.inFlight, 0);
        return out;
      });

      // servers without auth share one process each: start them now, each on its own, so the first call is
      // fast and failures show; the gateway does not wait for them (GET /health says `starting` meanwhile)
      api.addHook('onStart', () => {
        for (const server of api.servers.list()) {
          if (server.auth || server.entry.isolation === 'session') continue;
          const instance = dispatcher.pool.get(server, ANONYMOUS, InstancePool.keyOf(server, ANONYMOUS));
          void instance.whenSettled().then(() => {
            // a failed one is logged once, by the pool that started it
            if (instance.state === 'down' || instance.state === 'starting') {
              api.log.error({ server: server.name, error: instance.status().lastError }, 'server is not ready; the gateway serves the others and keeps trying');
            }
          });
        }
      });
      api.addHook('preClose', async () => {
        bridge.stop();
        forwarder.stop();
        subscriptions.closeAll();
        await dispatcher.drain(options.drainMs ?? 3000);
        for (const s of dispatcher.sessions.all()) s.stream?.close('gateway stopping');
      });
      api.addHook('onClose', () => dispatcher.stop());
    },
  });
}
