import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { builtinPlugins, createKernel, isHttpUrl, loadConfigFile, type Kernel, type Plugin, type ServerDefinition } from '../index.js';
import { complain, describeError, exitCodeFor, EXIT_OK, EXIT_RUNTIME, say, UsageError } from './output.js';
import { fileSource, packagesDir, resolveRunTarget, type ConfigSource } from './packages.js';
import { loadPlugin } from './plugins.js';

export interface RunOptions {
  /** `author/pkg@version`, `author/pkg`, `all`, or a path to a metadata.json */
  target?: string;
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
  /** how long a signal waits for a graceful stop before exiting anyway, ms */
  stopTimeout?: number;
}

interface Prepared {
  servers: ServerDefinition[];
  plugins: Plugin[];
}

function checkOptions(options: RunOptions): void {
  if (options.target !== undefined && options.file !== undefined) {
    throw new UsageError(`give either a package (${options.target}) or --file (${options.file}), not both`);
  }
  if (options.target === undefined && options.file === undefined) {
    throw new UsageError('say what to run: a package such as author/pkg@1.0.0, "all", a path to a metadata.json, or --file config.json');
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535, got "${options.port}"`);
  }
  if (options.publicUrl !== undefined && !isHttpUrl(options.publicUrl)) {
    throw new UsageError(`--public-url must be an http(s) URL such as https://gateway.example.com, got "${options.publicUrl}"`);
  }
}

/** Reads every config source and loads every plugin named on the command line or in the files. */
async function prepare(options: RunOptions): Promise<Prepared> {
  const sources: ConfigSource[] = options.file !== undefined
    ? [fileSource(options.file)]
    : resolveRunTarget(options.target!, packagesDir(options.packagesDir));
  const servers: ServerDefinition[] = [];
  const pluginSpecs: { spec: string; baseDir: string }[] = options.plugins.map((spec) => ({ spec, baseDir: process.cwd() }));
  for (const source of sources) {
    say(`Reading ${source.label}...`);
    const loaded = loadConfigFile(source.file);
    servers.push(...loaded.servers);
    for (const spec of loaded.plugins) pluginSpecs.push({ spec, baseDir: dirname(loaded.file) });
  }
  if (servers.length === 0) {
    throw new UsageError(`nothing to serve: ${sources.map((s) => s.file).join(', ')} ${sources.length === 1 ? 'has' : 'have'} no servers in "mcpServers"`);
  }
  const plugins: Plugin[] = [];
  const seen = new Set<string>();
  for (const { spec, baseDir } of pluginSpecs) {
    // the same file named twice (--plugin and a config's list) loads once
    const key = spec.startsWith('.') || isAbsolute(spec) ? resolvePath(baseDir, spec) : spec;
    if (seen.has(key)) continue;
    seen.add(key);
    plugins.push(await loadPlugin(spec, baseDir));
  }
  return { servers, plugins };
}

function describeServer(server: ServerDefinition): string {
  const where = server.entry.url !== undefined ? `url ${new URL(server.entry.url).origin}` : `command ${server.entry.command}`;
  const auth = server.entry.auth ? `, auth ${server.entry.auth.type}${server.entry.auth.flow ? `/${server.entry.auth.flow}` : ''}` : '';
  return `${where}${auth}`;
}

function printStarted(kernel: Kernel): void {
  const publicUrl = kernel.publicUrl();
  for (const server of kernel.servers.list()) {
    const strategy = server.auth ? kernel.authStrategies.get(server.auth) : undefined;
    const banner = strategy?.banner?.(server, publicUrl) ?? {};
    say(`Added ${server.name} endpoints${banner.suffix ?? ''}`);
    for (const line of banner.lines ?? []) say(/^\s/.test(line) ? line : `  ${line}`);
  }
  say(`Starting FluidMCP server on port ${kernel.address().port}`);
  say(`FluidMCP gateway ready at ${publicUrl}`);
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
        () => {
          kernel.log.info('stopped');
          kernel.log.flush();
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

/**
 * `fluidmcp run`: reads packages or a config file, loads plugins, and serves every server on one port.
 * Resolves with an exit code when it is done, or never while the gateway serves (signals end it).
 */
export async function runCommand(options: RunOptions): Promise<number> {
  let kernel: Kernel | undefined;
  try {
    checkOptions(options);
    const { servers, plugins } = await prepare(options);
    if (!options.startServer) {
      for (const server of servers) say(`Would add ${server.name} endpoints (${describeServer(server)})`);
      const count = servers.length === 1 ? '1 server' : `${servers.length} servers`;
      say(`Configuration is valid. Not starting the gateway: add --start-server to serve ${count} on port ${options.port}`);
      return EXIT_OK;
    }
    kernel = createKernel({
      port: options.port,
      host: options.host,
      publicUrl: options.publicUrl,
      logLevel: options.logLevel,
      allowedHosts: options.allowedHosts,
      allowedOrigins: options.allowedOrigins,
      servers,
    });
    // third-party plugins first: their transports get the first claim on the entries they know
    for (const plugin of [...plugins, ...builtinPlugins()]) kernel.use(plugin);
    const started = kernel.start();
    handleSignals(kernel, started, options.stopTimeout ?? 10_000);
    await started;
    printStarted(kernel);
    return await new Promise<number>(() => undefined);
  } catch (err) {
    complain(describeError(err));
    kernel?.log.flush();
    return exitCodeFor(err);
  }
}
