import { definePlugin, PENDING_STATE, type Plugin } from '../../core/index.js';
import { GatewayMetrics } from './gateway-metrics.js';

export { GatewayMetrics, CALL_BUCKETS } from './gateway-metrics.js';

export interface MetricsPrometheusOptions {
  /** path of the scrape endpoint (default `/metrics`) */
  path?: string;
  /** add prom-client's default process and Node.js metrics (default true) */
  defaultMetrics?: boolean;
  /** buckets of the call latency histogram, seconds */
  callBuckets?: number[];
}

/**
 * GET /metrics in the Prometheus text format, from a prom-client registry of this plugin's own (never
 * the global one): requests by package, route and status; call latency by package; server processes
 * up, started and crashed; pending logins; open event streams; login outcomes. The figures come from the
 * kernel's events, so the plugins that emit them know nothing of Prometheus. Labels hold only configured
 * package names, route patterns, methods, statuses and fixed outcomes: never tokens, ids or paths.
 */
export function metricsPrometheus(options: MetricsPrometheusOptions = {}): Plugin {
  const path = options.path ?? '/metrics';
  return definePlugin({
    name: 'metrics-prometheus',
    async register(api) {
      // loaded only when the plugin is used: prom-client is not part of every gateway's start
      const client = await import('prom-client');
      const metrics = new GatewayMetrics(client, api.servers, {
        defaultMetrics: options.defaultMetrics ?? true,
        callBuckets: options.callBuckets,
        pendingLogins: () => api.tryResolve(PENDING_STATE)?.size(),
        log: api.log,
      });
      metrics.listen(api.events);
      metrics.zero();
      api.addHook('onResponse', (ctx) => metrics.request(ctx));
      api.route({
        method: 'GET',
        path,
        handler: async (ctx) => {
          const body = await metrics.registry.metrics();
          ctx.res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
          ctx.res.end(body);
        },
      });
    },
  });
}
