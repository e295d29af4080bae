import type { Agent } from 'undici';
import { loadUndici } from './undici.js';
import { definePlugin, EVENT_STREAMS, type Plugin, type ServerEntry, type TransportFactory } from '../../core/index.js';
import { SseClientRoutes } from './client-routes.js';
import { EventStreamHub } from './event-stream.js';
import { validateRemoteEntry } from './remote-config.js';
import { RemoteUpstream, type ReconnectSettings } from './remote-upstream.js';

export { ServerEventStream, EventStreamHub } from './event-stream.js';
export { RemoteUpstream } from './remote-upstream.js';

export interface TransportSseOptions {
  /** interval of the keep-alive comment on open streams, ms (default 15000; 0 turns it off) */
  keepAliveMs?: number;
  /** bytes a stream toward a client may hold unsent before it is closed as a slow reader (default 4 MiB) */
  maxBufferedBytes?: number;
  /** remote servers (entries with `url`) */
  remote?: {
    /** time to open a connection, ms (default 10000) */
    connectTimeoutMs?: number;
    /** time to the response headers of a GET, DELETE or HTTP+SSE POST, ms (default 30000) */
    headersTimeoutMs?: number;
    /** Streamable HTTP POST: time to the answer and longest silence inside it, ms (default 300000) */
    requestTimeoutMs?: number;
    /** HTTP+SSE: time to wait for the `endpoint` event, ms (default 10000) */
    endpointTimeoutMs?: number;
    /** largest JSON answer or SSE event accepted from a remote server, bytes (default 16 MiB) */
    maxMessageBytes?: number;
    /** reconnect backoff (defaults: 250 ms first, 10 s at most, never give up) */
    reconnect?: Partial<ReconnectSettings>;
  };
}

/**
 * Server-Sent Events both ways: the event-stream writer (EVENT_STREAMS), the client routes
 * POST /:name/sse and the 2024-11-05 HTTP+SSE transport (GET /:name/sse, POST /:name/messages),
 * and the `http` transport that reaches remote MCP servers given by `url`.
 */
export function transportSse(options: TransportSseOptions = {}): Plugin {
  const remote = options.remote ?? {};
  return definePlugin({
    name: 'transport-sse',
    register(api) {
      const log = api.log;
      const hub = new EventStreamHub({
        keepAliveMs: options.keepAliveMs ?? 15_000,
        maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
        log,
        events: api.events,
      });
      api.provide(EVENT_STREAMS, hub);

      const routes = new SseClientRoutes(api, hub, log);
      routes.register();

      let agent: Agent | undefined;
      let agentLoading: Promise<Agent> | undefined;
      const getAgent = (): Promise<Agent> =>
        (agentLoading ??= loadUndici().then(({ Agent }) => {
          agent = new Agent({
            connectTimeout: remote.connectTimeoutMs ?? 10_000,
            headersTimeout: settings.headersTimeoutMs,
            bodyTimeout: settings.requestTimeoutMs,
            keepAliveTimeout: 4_000,
          });
          return agent;
        }));
      const upstreams = new Set<RemoteUpstream>();
      const settings = {
        headersTimeoutMs: remote.headersTimeoutMs ?? 30_000,
        requestTimeoutMs: remote.requestTimeoutMs ?? 300_000,
        endpointTimeoutMs: remote.endpointTimeoutMs ?? 10_000,
        maxMessageBytes: remote.maxMessageBytes ?? 16 * 1024 * 1024,
        reconnect: { initialDelayMs: 250, maxDelayMs: 10_000, maxAttempts: Infinity, ...remote.reconnect },
      };
      const http: TransportFactory = {
        kind: 'http',
        claims: (entry: ServerEntry) => typeof entry.url === 'string' && entry.command === undefined,
        validate: (server) => validateRemoteEntry(server),
        create: (upstreamOptions) => {
          const upstream = new RemoteUpstream(upstreamOptions, getAgent, settings, (u) => upstreams.delete(u));
          upstreams.add(upstream);
          return upstream;
        },
      };
      api.transports.register('http', http, api.name);

      api.addHook('preClose', () => {
        hub.closeAll('the gateway is stopping');
        routes.closeAll();
      });
      api.addHook('onClose', async () => {
        await Promise.all([...upstreams].map((u) => u.stop()));
        if (agentLoading) await agentLoading.catch(() => undefined);
        if (agent) {
          const closing = agent;
          agent = undefined;
          agentLoading = undefined;
          // close() waits for requests in flight; destroy() after a bound so stop never hangs
          let timer: NodeJS.Timeout | undefined;
          const bound = new Promise<void>((r) => (timer = setTimeout(r, 2_000)));
          await Promise.race([closing.close().catch(() => undefined), bound]);
          clearTimeout(timer);
          if (!closing.destroyed) await closing.destroy().catch(() => undefined);
        }
      });
    },
  });
}
