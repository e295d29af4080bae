import { definePlugin, EVENT_STREAMS, type Plugin } from '../../core/index.js';
import { SseClientRoutes } from './client-routes.js';
import { EventStreamHub } from './event-stream.js';

export { ServerEventStream, EventStreamHub } from './event-stream.js';

export interface TransportSseOptions {
  /** interval of the keep-alive comment on open streams, ms (default 15000; 0 turns it off) */
  keepAliveMs?: number;
  /** bytes a stream toward a client may hold unsent before it is closed as a slow reader (default 4 MiB) */
  maxBufferedBytes?: number;
}

/**
 * Server-Sent Events toward clients: the event-stream writer (EVENT_STREAMS), the client routes
 * POST /:name/sse and the 2024-11-05 HTTP+SSE transport (GET /:name/sse, POST /:name/messages).
 * Remote servers by `url` are the `transport-http` plugin's.
 */
export function transportSse(options: TransportSseOptions = {}): Plugin {
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

      api.addHook('preClose', () => {
        hub.closeAll('the gateway is stopping');
        routes.closeAll();
      });
    },
  });
}
