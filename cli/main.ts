#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
// node-flags.ts says why these flags (speed and memory at 128 clients); keep the two lists the same
// (the default grows it to ~50 MB under load); `npm run bench` measured no loss of throughput at 32 clients.
// Started with plain `node`, `run --start-server` relaunches itself with these flags (node-flags.ts): first import.
import './node-flags.js';
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { complain, describeError, EXIT_RUNTIME, EXIT_USAGE } from './output.js';
import { listCommand } from './list.js';
import { givenLimits, limitOptions } from './limits.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A repeatable option: absent, one value, or several (yargs makes an array of repeats). */
function list(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** A single-valued option given twice: the last one wins, as for --port. */
function last(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  return String(Array.isArray(value) ? value.at(-1) : value);
}

function parsePort(raw: unknown): number {
  const text = String(Array.isArray(raw) ? raw.at(-1) : raw);
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new Error(`--port must be a whole number from 0 to 65535, got "${text}"`);
  return port;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// a closed pipe (`fluidmcp list | head -1`) is not an error worth a message
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});
// a stderr whose reader went away has nowhere to report to: the gateway goes on (and stops) without it
process.stderr.on('error', () => undefined);

process.on('uncaughtException', (err) => {
  complain(`unexpected error: ${describeError(err)}`);
  process.exit(EXIT_RUNTIME);
});
process.on('unhandledRejection', (err) => {
  complain(`unexpected error: ${describeError(err)}`);
  process.exit(EXIT_RUNTIME);
});

let done: Promise<number> | undefined;

await yargs(hideBin(process.argv))
  .scriptName('fluidmcp')
  .usage('$0 <command> [options]')
  .option('packages-dir', {
    type: 'string',
    describe: 'where packages are installed (default: $FMCP_PACKAGES_DIR or ./.fmcp-packages)',
  })
  .command(
    'run [package]',
    'serve MCP servers over HTTP: an installed package (author/pkg@version, author/pkg), "all", or a path to a metadata.json',
    (y) =>
      limitOptions(y)
        // words after the package are the run command's to refuse (checkOptions), not unknown commands
        .strictCommands(false)
        .positional('package', { type: 'string', describe: 'author/pkg@version, author/pkg, all, or path/to/metadata.json' })
        .option('file', { type: 'string', describe: 'a config file in the {"mcpServers": {...}} shape' })
        .option('start-server', { type: 'boolean', default: false, describe: 'start the gateway (without it, only validate and show what would be served)' })
        .option('port', { type: 'string', default: '8099', coerce: parsePort, defaultDescription: '8099', describe: 'port to listen on (0 picks a free one)' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to bind' })
        .option('public-url', { type: 'string', describe: 'the URL clients and OAuth providers reach the gateway at' })
        .option('log-level', { type: 'string', default: 'info', choices: LOG_LEVELS, describe: 'log level (logs are JSON lines on stderr)' })
        .option('allowed-host', { type: 'string', describe: 'a Host name to accept besides loopback names (repeatable)' })
        .option('allowed-origin', { type: 'string', describe: 'a browser Origin to accept (repeatable)' })
        .option('plugin', { type: 'string', describe: 'a plugin module name or path to load (repeatable)' })
        .option('state-store', { type: 'string', describe: 'where pending logins live: redis://host:port/db (shared by replicas) or memory (default)' })
        .option('replica-id', { type: 'string', describe: 'this replica\'s name behind a load balancer: session ids start with it (see docs/deploy.md)' })
        .option('replica-url', { type: 'string', describe: 'with --replica-id and a Redis store: the URL the other replicas reach this one at (default: the address it listens on; or FMCP_REPLICA_URL)' })
        .option('group', { type: 'string', describe: 'serve several servers at one URL: name=server1,server2 (repeatable)' })
        .option('token-key', { type: 'string', describe: 'a key that seals the tokens MCP clients get (repeatable, first seals; default FMCP_TOKEN_KEYS)' })
        .option('metrics', { type: 'boolean', default: false, describe: 'serve Prometheus metrics at GET /metrics' })
        .option('console', { type: 'boolean', default: true, describe: 'serve the web console at / and its API at /api (--no-console turns it off)' })
        .option('admin-token', { type: 'string', describe: 'open the console to non-loopback callers, who must present this token (or set FMCP_ADMIN_TOKEN)' })
        .example('$0 run acme/everything@1.0.0 --start-server', 'serve one installed package on port 8099')
        .example('$0 run --file config.json --start-server --port 9000', 'serve a config file'),
    (argv) => {
      // imported here so `list` and usage errors do not load every plugin
      done = import('./run.js').then(({ runCommand }) => runCommand({
        target: argv.package,
        extraArgs: argv._.slice(1).map(String),
        file: last(argv.file),
        startServer: argv['start-server'],
        port: argv.port,
        host: argv.host,
        publicUrl: argv['public-url'],
        logLevel: argv['log-level'],
        allowedHosts: list(argv['allowed-host']),
        allowedOrigins: list(argv['allowed-origin']),
        plugins: list(argv.plugin),
        stateStore: last(argv['state-store']),
        replicaId: last(argv['replica-id']),
        replicaUrl: last(argv['replica-url']) ?? (argv['replica-id'] !== undefined ? process.env.FMCP_REPLICA_URL || undefined : undefined),
        metrics: argv.metrics === true,
        console: argv.console !== false,
        adminToken: last(argv['admin-token']) ?? (process.env.FMCP_ADMIN_TOKEN || undefined),
        groups: list(argv.group),
        tokenKeys: list(argv['token-key']),
        packagesDir: argv['packages-dir'],
        limits: givenLimits(argv),
      }));
    },
  )
  .command('list', 'list installed packages, one author/pkg@version a line', {}, (argv) => {
    done = Promise.resolve(listCommand(argv['packages-dir'] as string | undefined));
  })
  .demandCommand(1, 'give a command: run or list')
  .strictCommands()
  .wrap(Math.min(100, process.stdout.columns || 100))
  .strictOptions()
  .version(version())
  .help()
  .fail((message, err) => {
    const unknown = /^Unknown commands?: ([^,\s]+)/.exec(message ?? '');
    const text = unknown ? `unknown command "${unknown[1]}": the commands are run and list` : describeError(message ?? err);
    complain(`${text} (see fluidmcp --help)`);
    process.exit(EXIT_USAGE);
  })
  .parseAsync();

if (done) {
  process.exit(
    await done.catch((err: unknown) => {
      complain(describeError(err));
      return EXIT_RUNTIME;
    }),
  );
}
