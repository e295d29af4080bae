import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real redis-server and nginx processes for replica tests (Debian packages `redis-server`, `nginx`;
 * `.ci/run` installs them). Each runs in a temporary folder on a port from the OS and is stopped by the test.
 */

/** The path of an executable on PATH (and the sbin folders, where nginx lives), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * True on CI (`CI` set, or `FMCP_TEST_STRICT=1`, which .ci/run sets): every part the tests need is
 * installed there, so a test that would skip for a missing part fails instead. test/reporter.cjs reads
 * the same variables and counts any other skip as a failure there too.
 */
export function strictTests(): boolean {
  const on = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  return on(process.env.FMCP_TEST_STRICT) || on(process.env.CI);
}

/**
 * Skips the calling test or suite with `reason`, which the reporter prints beside the test. With
 * `needs` (an installed part the test cannot run without) the skip is a failure on CI (`strictTests()`).
 */
export function skipBecause(ctx: Mocha.Context, reason: string, options: { needsInstalledPart?: boolean } = {}): never {
  if (options.needsInstalledPart && strictTests()) {
    throw new Error(`${reason}: CI (CI or FMCP_TEST_STRICT set) must run this test, so the missing part is a failure here, not a skip`);
  }
  // the reporter walks the test and its suites for `skipReason`; in a before-all hook `ctx.test` is the
  // hook (and `ctx.currentTest` only the suite's first test): the reason goes on the suite
  const hook = ctx.test as { type?: string; title?: string; parent?: unknown } | undefined;
  const target = hook?.type === 'hook' && /before all/.test(hook.title ?? '') ? hook.parent : (ctx.currentTest ?? ctx.test);
  if (target) (target as unknown as { skipReason?: string }).skipReason = reason;
  ctx.skip();
}

/**
 * Skips the calling suite, saying why, when one of `binaries` is not installed: the only reason a replica
 * test may skip. `.ci/run` installs them (apt-get install -y redis-server nginx), and on CI a missing one
 * fails the suite instead (see `strictTests()`).
 */
export function skipWithout(suite: Mocha.Context, ...binaries: string[]): void {
  const missing = binaries.filter((name) => !findBinary(name));
  if (missing.length === 0) return;
  skipBecause(suite, `${missing.join(' and ')} not installed (apt-get install -y ${missing.join(' ')}, as .ci/run does)`, { needsInstalledPart: true });
}

/** A port the OS says is free right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A child process that is stopped with SIGTERM, then SIGKILL after a bound. */
class Service {
  output = '';
  readonly exited: Promise<void>;
  private done = false;

  constructor(readonly name: string, readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.output += `\n${err.message}`;
        this.done = true;
        resolve();
      });
      child.on('exit', () => {
        this.done = true;
        resolve();
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  async waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (this.done) throw new Error(`${this.name} exited before ${what}: ${this.output.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: ${what} did not happen within ${ms} ms: ${this.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 5000): Promise<void> {
    if (this.done) return;
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((r) => {
        timer = setTimeout(() => {
          this.child.kill('SIGKILL');
          r();
        }, ms);
      }),
    ]);
    clearTimeout(timer);
    await this.exited;
  }
}

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port>/<db> */
  url(db?: number): string;
  readonly running: boolean;
  /** SIGSTOP: the server keeps its connections and answers nothing */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** Starts redis-server without persistence in a temporary folder; resolves once it accepts connections. */
export async function startRedis(options: { port?: number } = {}, binary = findBinary('redis-server')): Promise<RedisServer> {
  if (!binary) throw new Error('redis-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'fmcp-redis-'));
  const port = options.port ?? (await freePort());
  const service = new Service(
    'redis-server',
    spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'notice'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  try {
    await service.waitFor(() => service.output.includes('Ready to accept connections'), 10_000, 'ready');
  } catch (err) {
    await service.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    get running() {
      return service.running;
    },
    pause: () => void service.child.kill('SIGSTOP'),
    resume: () => void service.child.kill('SIGCONT'),
    stop: async () => {
      if (service.running) service.child.kill('SIGCONT');
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NginxReplica {
  /** the replica's id: session ids it hands out start with `<id>.` */
  readonly id: string;
  readonly port: number;
}

/**
 * The nginx configuration of docs/deploy.md for replicas on 127.0.0.1: requests without a session go to
 * any replica; a request whose `Mcp-Session-Id` (or legacy `?sessionId=`) starts with a replica's id goes
 * to that replica. Every path nginx writes is inside `dir`.
 */
export function nginxConfig(dir: string, listenPort: number, replicas: readonly NginxReplica[], user?: string, options: { sticky?: boolean } = {}): string {
  const sticky = options.sticky ?? true;
  const upstream = (name: string, ports: number[]): string =>
    [`  upstream ${name} {`, ...ports.map((p) => `    server 127.0.0.1:${p} max_fails=0;`), '    keepalive 16;', '  }'].join('\n');
  return `${user ? `user ${user};\n` : ''}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  # the gateway's own request body limit (4 MiB) decides, not nginx's default of 1 MiB
  client_max_body_size 4m;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

${upstream('fluidmcp', replicas.map((r) => r.port))}
${sticky ? `${replicas.map((r) => upstream(`fluidmcp_${r.id}`, [r.port])).join('\n')}

  # a session belongs to the replica that created it: its id starts with that replica's id
  map "$http_mcp_session_id$arg_sessionId" $fluidmcp_upstream {
    default fluidmcp;
${replicas.map((r) => `    "~^${r.id}\\." fluidmcp_${r.id};`).join('\n')}
  }
` : ''}
  server {
    listen 127.0.0.1:${listenPort};
    # each replica counts its own figures: Prometheus scrapes every replica directly, never through here
    location = /metrics { return 404; }
    location / {
      proxy_pass http://${sticky ? '$fluidmcp_upstream' : 'fluidmcp'};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      # event streams: pass each event on at once, keep quiet streams open
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
      # a replica that is down: try the next one, but never replay a call that may have run
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

export interface NginxServer {
  readonly port: number;
  readonly base: string;
  readonly config: string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground with the configuration above; resolves once it answers on its port. */
/** `sticky: false`: plain round-robin over the replicas, without the session map. */
export async function startNginx(replicas: readonly NginxReplica[], options: { port?: number; sticky?: boolean } = {}, binary = findBinary('nginx')): Promise<NginxServer> {
  if (!binary) throw new Error('nginx is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'fmcp-nginx-'));
  const port = options.port ?? (await freePort());
  // as root, workers would run as nobody and could not write to the temporary folder
  const config = nginxConfig(dir, port, replicas, process.getuid?.() === 0 ? 'root' : undefined, { sticky: options.sticky });
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);
  // -e: nginx opens its compiled-in error log before reading the config, unless told another one
  const service = new Service('nginx', spawn(binary, ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const stop = async (): Promise<void> => {
    await service.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!service.running) throw new Error(`nginx exited: ${service.output} ${safeRead(join(dir, 'error.log'))}`);
      if (await answers(port)) break;
      if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within 10 s: ${safeRead(join(dir, 'error.log'))}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, base: `http://localhost:${port}`, config, stop };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function answers(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
