import { definePlugin, errors, type Plugin, type ServerDefinition, type ServerEntry, type TransportFactory, type UpstreamOptions } from '../../core/index.js';
import { authVariables, checkInheritEnv } from './child-env.js';
import { STDIO_DEFAULTS, StdioUpstream, type ResolvedStdioOptions, type StdioOptions } from './stdio-upstream.js';

export { StdioUpstream, STDIO_DEFAULTS, type StdioOptions } from './stdio-upstream.js';
export { LineFramer, type LineSink } from './line-framer.js';
export { childEnvironment, authVariables, checkInheritEnv, DEFAULT_INHERITED_ENV } from './child-env.js';

function resolveOptions(options: StdioOptions): ResolvedStdioOptions {
  const settings = { ...STDIO_DEFAULTS };
  for (const [key, value] of Object.entries(options) as [keyof StdioOptions, unknown][]) {
    if (value === undefined) continue;
    if (!(key in STDIO_DEFAULTS)) throw errors.FMCP_ERR_PLUGIN_INVALID('"transport-stdio"', `unknown option "${key}" (known: ${Object.keys(STDIO_DEFAULTS).join(', ')})`);
    const min = key === 'maxFailedStarts' || key === 'maxLineBytes' ? 1 : 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw errors.FMCP_ERR_PLUGIN_INVALID('"transport-stdio"', `option ${key} must be a number of at least ${min}`);
    }
    settings[key] = value;
  }
  return settings;
}

/**
 * The stdio transport factory on its own, for callers that manage upstreams without a kernel.
 * `servers`: every server the gateway serves, whose auth blocks' variables no child inherits.
 */
export function stdioTransportFactory(options: StdioOptions = {}, servers?: () => readonly ServerDefinition[]): TransportFactory & { readonly live: ReadonlySet<StdioUpstream> } {
  const settings = resolveOptions(options);
  const live = new Set<StdioUpstream>();
  let withheld: Set<string> | undefined;
  const withheldEnv = servers ? () => (withheld ??= authVariables(servers())) : undefined;
  return {
    kind: 'stdio',
    live,
    claims: (entry: ServerEntry) => typeof entry.command === 'string' && entry.command !== '',
    validate(server: ServerDefinition): void {
      checkInheritEnv([server], servers ? servers() : [server]);
    },
    create(upstreamOptions: UpstreamOptions): StdioUpstream {
      // forgotten once stopped, so a long-running gateway does not keep every upstream it ever made
      const upstream = new StdioUpstream(upstreamOptions, settings, () => live.delete(upstream), withheldEnv);
      live.add(upstream);
      return upstream;
    },
  };
}

/**
 * Runs servers whose entry has `command` as child processes speaking newline-delimited JSON-RPC
 * on stdin/stdout, each in its own process group, restarted with backoff when they crash.
 */
export function transportStdio(options: StdioOptions = {}): Plugin {
  resolveOptions(options); // bad options fail here, not at start
  return definePlugin({
    name: 'transport-stdio',
    register(api) {
      const factory = stdioTransportFactory(options, () => api.servers.list());
      // the third argument is ignored by the kernel's wrapper, which fills in the plugin name itself
      api.transports.register('stdio', factory, api.name);
      // a safety net: whoever created upstreams should stop them, but none may outlive the kernel
      api.addHook('onClose', async () => {
        await Promise.all([...factory.live].map((u) => u.stop()));
      });
      api.addHealth((server) => {
        if (server.transport !== 'stdio') return {};
        const processes = [...factory.live].filter((u) => u.serverName === server.name).map((u) => ({ state: u.status.state, restarts: u.status.restarts }));
        return { processes };
      });
    },
  });
}
