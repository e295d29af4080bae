import type { Agent } from 'undici';
import { loadUndici } from './undici.js';
import { definePlugin, type Plugin, type ServerEntry, type TransportFactory } from '../../core/index.js';
import { validateRemoteEntry } from './remote-config.js';
import { RemoteUpstream } from './remote-upstream.js';
import type { ReconnectSettings } from './settings.js';

export { RemoteUpstream } from './remote-upstream.js';
export type { ReconnectSettings } from './settings.js';

export interface TransportHttpOptions {
  /** time to open a connection, ms (default 10000) */
  connectTimeoutMs?: number;
  /** time to the response headers of a GET, DELETE, HTTP+SSE POST or server/discover probe, ms (default 30000) */
  headersTimeoutMs?: number;
  /** Streamable HTTP POST: time to the answer and longest silence inside it, ms (default 300000) */
  requestTimeoutMs?: number;
  /** HTTP+SSE: time to wait for the `endpoint` event, ms (default 10000) */
  endpointTimeoutMs?: number;
  /** largest JSON answer or SSE event accepted from a remote server, bytes (default 16 MiB) */
  maxMessageBytes?: number;
  /** reconnect backoff (defaults: 250 ms first, 10 s at most, never give up) */
  reconnect?: Partial<ReconnectSettings>;
}

/**
 * The `http` transport: remote MCP servers given by `url`, in their own era: 2026-07-28 when they answer
 * `server/discover`, else Streamable HTTP (2025), else the 2024-11-05 HTTP+SSE transport.
 */
export function transportHttp(options: TransportHttpOptions = {}): Plugin {
  return definePlugin({
    name: 'transport-http',
    register(api) {
      const settings = {
        headersTimeoutMs: options.headersTimeoutMs ?? 30_000,
        requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
        endpointTimeoutMs: options.endpointTimeoutMs ?? 10_000,
        maxMessageBytes: options.maxMessageBytes ?? 16 * 1024 * 1024,
        reconnect: { initialDelayMs: 250, maxDelayMs: 10_000, maxAttempts: Infinity, ...options.reconnect },
      };
      let agent: Agent | undefined;
      let agentLoading: Promise<Agent> | undefined;
      const getAgent = (): Promise<Agent> =>
        (agentLoading ??= loadUndici().then(({ Agent }) => {
          agent = new Agent({
            connectTimeout: options.connectTimeoutMs ?? 10_000,
            headersTimeout: settings.headersTimeoutMs,
            bodyTimeout: settings.requestTimeoutMs,
            keepAliveTimeout: 4_000,
          });
          return agent;
        }));
      const upstreams = new Set<RemoteUpstream>();
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
