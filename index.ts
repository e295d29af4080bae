import 'reflect-metadata';
import type { Plugin } from './core/index.js';
import { transportStdio, checkInheritEnv } from './plugins/transport-stdio/index.js';
import { proxyJsonRpc, type ProxyOptions } from './plugins/proxy-jsonrpc/index.js';
import { transportSse } from './plugins/transport-sse/index.js';
import { transportHttp, type TransportHttpOptions } from './plugins/transport-http/index.js';
import { authOAuth2Pkce, sharedStoreKeyMissing, TokenSeal } from './plugins/auth-oauth2-pkce/index.js';
import { stateRedis, type StateRedisOptions } from './plugins/state-redis/index.js';
import { metricsPrometheus, type MetricsPrometheusOptions } from './plugins/metrics-prometheus/index.js';
import { webConsole, type WebConsoleOptions } from './plugins/console/index.js';
import { groups, groupServers, parseGroupFlag, describeGroup } from './plugins/groups/index.js';

export * from './core/index.js';
export { transportStdio, proxyJsonRpc, type ProxyOptions, transportSse, transportHttp, type TransportHttpOptions, authOAuth2Pkce, stateRedis, type StateRedisOptions, metricsPrometheus, type MetricsPrometheusOptions, webConsole, type WebConsoleOptions };
export { groups, groupServers, parseGroupFlag, describeGroup };
export { checkInheritEnv, sharedStoreKeyMissing, TokenSeal };

/** The plugins `fluidmcp run` uses: stdio and remote (http) transports, the proxy, SSE, and OAuth2 PKCE. */
export function builtinPlugins(options: { tokenKeys?: readonly string[]; proxy?: ProxyOptions } = {}): Plugin[] {
  return [transportStdio(), transportHttp(), proxyJsonRpc(options.proxy), transportSse(), authOAuth2Pkce(options.tokenKeys?.length ? { tokenKeys: options.tokenKeys } : {})];
}
