import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import {
  builtinPlugins,
  checkInheritEnv,
  sharedStoreKeyMissing,
  TokenSeal,
  drainStderr,
  createKernel,
  describeGroup,
  groups,
  groupServers,
  parseGroupFlag,
  isAnyAddress,
  isLoopback,
  isHttpUrl,
  loadConfigFile,
  metricsPrometheus,
  stateRedis,
  webConsole,
  type Kernel,
  type Plugin,
  type ServerDefinition,
} from '../index.js';
import { complain, describeError, exitCodeFor, EXIT_OK, EXIT_RUNTIME, say, UsageError } from './output.js';
import { fileSource, packagesDir, resolveRunTarget, type ConfigSource } from './packages.js';
import { loadPlugin } from './plugins.js';
import { parseLimits, type GivenLimits } from './limits.js';

export interface RunOptions {
  /** `author/pkg@version`, `author/pkg`, `all`, or a path to a metadata.json */
  target?: string;
  /** words given after the package: refused (one package, or --file) */
  extraArgs?: string[];
  /** a config file in the mcpServers shape */
  file?: string;
  startServer: boolean;
  port: number;
  host: string;
  publicUrl?: string;
  logLevel: string;
  allowedHosts: string[];
  allowedOrigins: string[];
  /** module names or paths (relative to cwd) of third-party plugins */
  plugins: string[];
  packagesDir?: string;
  /** `redis://host:port/db` (pending logins shared by replicas) or `memory`; default: a config file's "stateStore", else memory */
  stateStore?: string;
  /** this replica's name: session ids start with it so a load balancer can route them back */
  replicaId?: string;
  /** the URL the other replicas reach this one at (default: the address it listens on); needs --replica-id and a Redis store */
  replicaUrl?: string;
  /** serve GET /metrics */
  metrics?: boolean;
  /** serve the web console at / and its API at /api (default true) */
  console?: boolean;
  /** the console's admin token: without it the console answers loopback callers only */
  adminToken?: string;
  /** how long a signal waits for a graceful stop before exiting anyway, ms */
  stopTimeout?: number;
  /** `--group name=a,b`: groups served at /{name}/mcp besides the config files' "groups" */
  groups?: string[];
  /** keys that seal the tokens the gateway issues to MCP clients (--token-key; default FMCP_TOKEN_KEYS) */
  tokenKeys?: string[];
  /** the proxy's session and process limits as given (--max-sessions …, or their FMCP_* variables) */
  limits?: GivenLimits;
}

interface Prepared {
  servers: ServerDefinition[];
  plugins: Plugin[];
  /** the store URL from --state-store or a config file, undefined for memory */
  stateStore?: string;
}

const REPLICA_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** The store URL without a password, for messages (also when it does not parse). */
function shownUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#:@]*):[^/?#@]*@/i, '$1:***@');
}

/** undefined for the in-memory store; the URL for Redis; a usage error for anything else. */
function checkStateStore(value: string, where: string): string | undefined {
  if (value === 'memory') return undefined;
  const u = URL.canParse(value) ? new URL(value) : undefined;
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || u.hostname === '') {
    throw new UsageError(`${where} must be redis://host:port/db, rediss://host:port/db or memory, got "${shownUrl(value)}"`);
  }
  return value;
}

function checkOptions(options: RunOptions): void {
  if (options.file === '') throw new UsageError('--file needs a path: --file config.json');
  const given = options.target !== undefined ? [options.target, ...(options.extraArgs ?? [])] : [];
  if (given.length > 0 && options.file !== undefined) {
    throw new UsageError(`give either a package (${given.join(' ')}) or --file (${options.file}), not both`);
  }
  if (given.length > 1) {
    throw new UsageError(`give one package to run, not ${given.length} (${given.join(' ')}): "all" serves every installed package`);
  }
  if (options.target === undefined && options.file === undefined) {
    throw new UsageError('say what to run: a package such as author/pkg@1.0.0, "all", a path to a metadata.json, or --file config.json');
  }
  const badHost = hostProblem(options.host);
  if (badHost) throw new UsageError(badHost);
  for (const origin of options.allowedOrigins ?? []) {
    const problem = originProblem(origin);
    if (problem) throw new UsageError(problem);
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535, got "${options.port}"`);
  }
  if (options.publicUrl !== undefined && !isHttpUrl(options.publicUrl)) {
    throw new UsageError(`--public-url must be an http(s) URL such as https://gateway.example.com, got "${options.publicUrl}"`);
  }
  if (options.stateStore !== undefined) checkStateStore(options.stateStore, '--state-store');
  parseLimits(options.limits ?? {});
  if (options.adminToken !== undefined && options.adminToken.length < 16) {
    throw new UsageError('--admin-token must be at least 16 characters: use a random one, such as the output of `openssl rand -hex 32`');
  }
  if (options.replicaId !== undefined && !REPLICA_ID.test(options.replicaId)) {
    throw new UsageError(`--replica-id must be 1-32 letters, digits, "-" or "_" (it starts every session id), got "${options.replicaId}"`);
  }
  if (options.replicaUrl !== undefined) {
    if (!isHttpUrl(options.replicaUrl)) throw new UsageError(`--replica-url must be an http(s) URL such as http://10.0.0.7:8101, got "${options.replicaUrl}"`);
    if (options.replicaId === undefined) throw new UsageError('--replica-url needs --replica-id: it is where the other replicas reach this one');
  }
}

/** Why an `--allowed-origin` would never match a browser's Origin header, or undefined. */
function originProblem(origin: string): string | undefined {
  if (origin === '*') return '--allowed-origin takes one origin per flag, such as https://app.example.com: "*" is not accepted (every web page could then call the gateway from its visitors\' browsers)';
  let parsed: URL | undefined;
  try {
    parsed = new URL(origin);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.origin.toLowerCase() !== origin.toLowerCase()) {
    return `--allowed-origin must be an origin as browsers send it: scheme, host and port only, such as https://app.example.com or http://localhost:3000, got "${origin}"`;
  }
  return undefined;
}

/** `--host` without the brackets of an IPv6 literal (`[::1]` is how URLs write ::1, and what the gateway prints). */
function bareHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1');
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Why `--host` cannot be bound, or undefined: an IP literal (IPv6 with or without brackets), 0, or a host name. */
function hostProblem(host: string): string | undefined {
  const bare = bareHost(host);
  if (isIP(bare) !== 0 || bare === '0') return undefined;
  if (!/^[\d.]+$/.test(bare) && HOST_NAME.test(bare)) return undefined;
  return `--host must be an address to listen on: an IP address (127.0.0.1, ::1, 0.0.0.0 for every interface) or a host name of this machine, got "${host}"`;
}

/** Reads every config source and loads every plugin named on the command line or in the files. */
async function prepare(options: RunOptions): Promise<Prepared> {
  const sources: ConfigSource[] = options.file !== undefined
    ? [fileSource(options.file)]
    : resolveRunTarget(options.target!, packagesDir(options.packagesDir));
  const servers: ServerDefinition[] = [];
  const groupSources: { file: string; groups: Record<string, unknown> }[] = (options.groups ?? []).map((flag) => ({ file: '--group', groups: Object.fromEntries([parseGroupFlag(flag)]) }));
  const pluginSpecs: { spec: string; baseDir: string }[] = options.plugins.map((spec) => ({ spec, baseDir: process.cwd() }));
  let stateStore = options.stateStore !== undefined ? checkStateStore(options.stateStore, '--state-store') : undefined;
  let storeFrom = options.stateStore !== undefined ? '--state-store' : undefined;
  for (const source of sources) {
    say(`Reading ${source.label}...`);
    if (source.pkg && source.versions && source.versions.length > 1) say(`Using ${source.pkg.id} (installed: ${source.versions.join(', ')})`);
    const loaded = loadConfigFile(source.file);
    servers.push(...loaded.servers);
    if (loaded.groups !== undefined) groupSources.push({ file: loaded.file, groups: loaded.groups });
    if (loaded.stateStore !== undefined && options.stateStore === undefined) {
      const url = checkStateStore(loaded.stateStore, `"stateStore" in ${loaded.file}`);
      if (storeFrom !== undefined && url !== stateStore) {
        throw new UsageError(`"stateStore" in ${loaded.file} differs from the one in ${storeFrom}: one gateway has one store (or give --state-store)`);
      }
      stateStore = url;
      storeFrom = loaded.file;
    }
    for (const spec of loaded.plugins) pluginSpecs.push({ spec, baseDir: dirname(loaded.file) });
  }
  if (servers.length === 0) {
    throw new UsageError(`nothing to serve: ${sources.map((s) => s.file).join(', ')} ${sources.length === 1 ? 'has' : 'have'} no servers in "mcpServers"`);
  }
  // before the kernel's own checks, as the start always did: this names the variable across servers
  checkInheritEnv(servers);
  servers.push(...groupServers(groupSources, servers));
  const plugins: Plugin[] = [];
  const seen = new Set<string>();
  for (const { spec, baseDir } of pluginSpecs) {
    // the same file named twice (--plugin and a config's list) loads once
    const key = spec.startsWith('.') || isAbsolute(spec) ? resolvePath(baseDir, spec) : spec;
    if (seen.has(key)) continue;
    seen.add(key);
    plugins.push(await loadPlugin(spec, baseDir));
  }
  return { servers, plugins, stateStore };
}

function describeServer(server: ServerDefinition): string {
  const group = describeGroup(server);
  if (group !== undefined) return group;
  const where = server.entry.url !== undefined ? `url ${new URL(server.entry.url).origin}` : `command ${server.entry.command}`;
  const auth = server.entry.auth ? `, auth ${server.entry.auth.type}${server.entry.auth.flow ? `/${server.entry.auth.flow}` : ''}` : '';
  return `${where}${auth}`;
}

/** A bind address the network reaches: what it exposes to anyone there, in one line; undefined on loopback. */
export function networkWarning(host: string, servers: readonly ServerDefinition[], metrics: boolean): string | undefined {
  if (isLoopback(host)) return undefined;
  const open = servers.filter((s) => !s.entry.auth).map((s) => s.name);
  const parts = [
    ...(open.length > 0 ? [`servers without auth (${open.join(', ')})`] : []),
    '/health (process ids, stderr lines)',
    ...(metrics ? ['/metrics'] : []),
  ];
  const list = parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
  return `Warning: listening on ${host}, reachable from the network: ${list} answer anyone who reaches it; bind to 127.0.0.1 (behind a proxy) unless that is meant`;
}

function printStarted(kernel: Kernel, stateStore: string | undefined, metrics: boolean, host: string): void {
  const publicUrl = kernel.publicUrl();
  for (const server of kernel.servers.list()) {
    const strategy = server.auth ? kernel.authStrategies.get(server.auth) : undefined;
    const banner = strategy?.banner?.(server, publicUrl) ?? {};
    const group = describeGroup(server);
    say(`Added ${server.name} endpoints${group !== undefined ? ` (${group})` : ''}${banner.suffix ?? ''}`);
    for (const line of banner.lines ?? []) say(/^\s/.test(line) ? line : `  ${line}`);
  }
  if (stateStore !== undefined) say(`Pending logins are kept in Redis at ${shownUrl(stateStore)}`);
  if (metrics) say(`Metrics: ${publicUrl}/metrics`);
  const warning = networkWarning(host, kernel.servers.list(), metrics);
  if (warning !== undefined) say(warning);
  say(`Starting FluidMCP server on port ${kernel.address().port}`);
  const everywhere = isAnyAddress(host) ? ` (listening on all interfaces, ${kernel.address().host})` : '';
  say(`FluidMCP gateway ready at ${publicUrl}${everywhere}`);
}

/** Stops on SIGINT/SIGTERM within a bound; a second signal exits at once. */
function handleSignals(kernel: Kernel, started: Promise<unknown>, stopTimeout: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      complain(`${signal} received again: exiting without waiting`);
      process.exit(EXIT_RUNTIME);
    }
    stopping = true;
    kernel.log.info({ signal }, 'stopping');
    setTimeout(() => {
      complain(`the gateway did not stop within ${stopTimeout / 1000} s: exiting anyway`);
      process.exit(EXIT_RUNTIME);
    }, stopTimeout);
    started
      .catch(() => undefined)
      .then(() => kernel.stop())
      .then(
        async () => {
          kernel.log.info('stopped');
          // bounded: a stderr nobody reads must not keep a stopped gateway alive
          await drainStderr(Math.min(1000, stopTimeout));
          process.exit(EXIT_OK);
        },
        (err: unknown) => {
          complain(`stopping failed: ${describeError(err)}`);
          process.exit(EXIT_RUNTIME);
        },
      );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** The gateway `run` serves, with its plugins, not started yet: the dry run checks this very kernel. */
function buildKernel(options: RunOptions, { servers, plugins, stateStore }: Prepared): Kernel {
  const kernel = createKernel({
    port: options.port,
    host: bareHost(options.host),
    publicUrl: options.publicUrl,
    logLevel: options.logLevel,
    allowedHosts: options.allowedHosts,
    allowedOrigins: options.allowedOrigins,
    replicaId: options.replicaId,
    servers,
  });
  // the store first: Redis unreachable stops start-up before any server process starts
  if (stateStore !== undefined) kernel.use(stateRedis({ url: stateStore, replicaUrl: options.replicaUrl }));
  // third-party plugins next: their transports get the first claim on the entries they know
  for (const plugin of [...plugins, ...builtinPlugins({ tokenKeys: options.tokenKeys, proxy: parseLimits(options.limits ?? {}) })]) kernel.use(plugin);
  if (options.metrics) kernel.use(metricsPrometheus());
  if (options.console !== false) kernel.use(webConsole({ adminToken: options.adminToken }));
  if (servers.some((s) => describeGroup(s) !== undefined)) kernel.use(groups());
  return kernel;
}

/**
 * `fluidmcp run`: reads packages or a config file, loads plugins, and serves every server on one port.
 * Resolves with an exit code when it is done, or never while the gateway serves (signals end it).
 */
export async function runCommand(options: RunOptions): Promise<number> {
  let kernel: Kernel | undefined;
  try {
    checkOptions(options);
    const { servers, plugins, stateStore } = await prepare(options);
    if (options.replicaUrl !== undefined && stateStore === undefined) {
      throw new UsageError('--replica-url needs a shared store (--state-store redis://host:port/db): replicas find each other there');
    }
    // the dry run says what the start would: a shared store seals pending logins with the token key
    const keyGiven = (options.tokenKeys ?? []).length > 0 || TokenSeal.parseList(process.env['FMCP_TOKEN_KEYS']).length > 0;
    const missingKey = stateStore !== undefined ? sharedStoreKeyMissing(keyGiven, servers.map((s) => s.entry)) : undefined;
    if (missingKey) throw missingKey;
    kernel = buildKernel(options, { servers, plugins, stateStore });
    if (!options.startServer) {
      // the same checks as the start (plugins, transports, auth blocks), without starting anything
      await kernel.check();
      for (const server of servers) say(`Would add ${server.name} endpoints (${describeServer(server)})`);
      const count = servers.length === 1 ? '1 server' : `${servers.length} servers`;
      say(`Configuration is valid. Not starting the gateway: add --start-server to serve ${count} on port ${options.port}`);
      return EXIT_OK;
    }
    const started = kernel.start();
    handleSignals(kernel, started, options.stopTimeout ?? 10_000);
    await started;
    printStarted(kernel, stateStore, options.metrics === true, options.host);
    return await new Promise<number>(() => undefined);
  } catch (err) {
    complain(describeError(err));
    await drainStderr();
    return exitCodeFor(err);
  }
}
