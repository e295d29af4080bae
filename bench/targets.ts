import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepAliveAgent } from './agent-conn.js';
import { descendantsOf, startTimeOf } from './procfs.js';
import { HttpSession, ModernSession, PROTOCOL, StdioSession, type Session } from './sessions.js';
import { StdioServer } from './stdio-conn.js';
import { binNodeFlags } from '../cli/bin-flags.js';

/** The repository root, from dist/bench/. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const everythingServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
const SERVER_NAME = 'everything';
const START_TIMEOUT_MS = 30_000;

export type TargetName = 'direct' | 'gateway' | 'mcp-proxy' | 'supergateway' | 'floor' | 'relay';
/** `raw`: the bench's own keep-alive socket client; `agent`: `http.request` through a keep-alive `http.Agent` */
export type ClientKind = 'raw' | 'agent';
export const CLIENT_KINDS: ClientKind[] = ['raw', 'agent'];
export const ALL_TARGETS: TargetName[] = ['direct', 'gateway', 'mcp-proxy', 'supergateway', 'floor', 'relay'];
export type { Session } from './sessions.js';

/** The group of the group workload, its member servers (two server-everything processes), and its echo tool. */
export const GROUP = { name: 'g', members: [SERVER_NAME, 'other'], tool: `${SERVER_NAME}__echo` } as const;

export interface SessionOptions {
  /** a Bearer token on every request */
  token?: string;
  client?: ClientKind;
  /** `legacy` (default): initialize, then calls in a session; `modern`: 2026-07-28 stateless calls */
  era?: 'legacy' | 'modern';
  /** `server` (default): the server's own endpoint; `group`: the group's (a gateway started with `group`) */
  endpoint?: 'server' | 'group';
}

export interface RunningTarget {
  name: TargetName;
  /** the front process: the gateway or proxy, or the server itself for `direct` */
  pid: number;
  /** sessions with their own initialize and DELETE (false for `direct`: stdio is one session) */
  hasSessions: boolean;
  /** false for `direct`: the client kind does not apply */
  hasHttp: boolean;
  session(options?: SessionOptions): Session;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** a `--cpu-prof-dir` for the gateway process */
  profileDir?: string;
  /** Node flags instead of the bin's shebang flags */
  nodeFlags?: string[];
  /** the config's server gets an oauth2/pkce auth block */
  auth?: boolean;
  /** the Bearer token of the readiness probe (with `auth`) */
  probeToken?: string;
  /** a second server-everything ("other") and the group of both, served at /g/mcp */
  group?: boolean;
}


/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Races a promise against a timer that is always cleared. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${(ms / 1000).toFixed(1)} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}


/** A child process in its own group, with the tail of its output kept for error messages. */
class TargetProcess {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<void>;
  exitCode: number | null | undefined;
  private readonly waiters: { text: string; resolve: () => void }[] = [];

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      this.output.push(text);
      if (this.output.length > 40) this.output.shift();
      for (const w of this.waiters) if (text.includes(w.text)) w.resolve();
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        this.exitCode = code;
        resolve();
      });
      this.child.once('error', (err) => {
        this.output.push(err.message);
        this.exitCode = -1;
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  lastOutput(): string {
    const lines = this.output.join('').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return lines.slice(-3).join(' | ').slice(0, 400);
  }

  waitForOutput(text: string): Promise<void> {
    if (this.output.join('').includes(text)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ text, resolve }));
  }

  /** SIGTERM to the group, SIGKILL after a bound, then SIGKILL to any descendant still alive. */
  async stop(graceMs = 8000): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    const tree = descendantsOf(pid).map((p) => ({ pid: p, start: startTimeOf(p) }));
    if (this.exitCode === undefined) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
          resolve();
        }, graceMs);
      });
      await Promise.race([this.exited, killed]);
      clearTimeout(timer);
      await within(this.exited, 2000, `process ${pid}`).catch(() => undefined);
    }
    for (const t of tree) {
      if (t.start !== undefined && startTimeOf(t.pid) === t.start) {
        try {
          process.kill(t.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  }
}

/** Polls with a real initialize until the target answers, the process dies, or the bound passes. */
async function waitReady(proc: TargetProcess, probe: () => Session, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exitCode !== undefined) throw new Error(`${what} exited (code ${proc.exitCode}): ${proc.lastOutput()}`);
    const s = probe();
    try {
      await within(s.open(), 5000, `${what} initialize`);
      await within(s.close(), 5000, `${what} DELETE`).catch(() => undefined);
      return;
    } catch (err) {
      last = (err as Error).message;
      if (/^HTTP (401|403|404)/.test(last)) throw new Error(last);
    } finally {
      s.destroy();
    }
    await delay(200);
  }
  throw new Error(`${what} did not answer initialize within ${START_TIMEOUT_MS / 1000} s (last: ${last}): ${proc.lastOutput()}`);
}

/** One session and one echo through the group: its members are up and its names are as the bench calls them. */
async function probeGroup(s: Session, path: string): Promise<void> {
  try {
    await within(s.open(), 10_000, `initialize on ${path}`);
    await within(s.echo('probe'), 10_000, `${GROUP.tool} on ${path}`);
    await within(s.close(), 5000, `DELETE on ${path}`).catch(() => undefined);
  } catch (err) {
    throw new Error(`the group at ${path} does not serve ${GROUP.tool}: ${(err as Error).message}`);
  } finally {
    s.destroy();
  }
}

function upstreamCommand(): [string, string[]] {
  return [process.execPath, [everythingServer, 'stdio']];
}

async function startDirect(): Promise<RunningTarget> {
  const [cmd, args] = upstreamCommand();
  const server = new StdioServer(cmd, args);
  const id = server.id();
  const init = await within(
    server.send(id, `{"jsonrpc":"2.0","id":${id},"method":"initialize","params":{"protocolVersion":"${PROTOCOL}","capabilities":{},"clientInfo":{"name":"fluidmcp-bench","version":"1"}}}\n`),
    START_TIMEOUT_MS,
    'server-everything over stdio',
  ).catch((err: Error) => {
    server.child.kill('SIGKILL');
    throw new Error(`${err.message} ${server.stderrTail.join('').slice(-300)}`);
  });
  if (!init.result) throw new Error(`initialize failed: ${init.error?.message}`);
  server.notify('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  return {
    name: 'direct',
    pid: server.pid ?? -1,
    hasSessions: false,
    hasHttp: false,
    session: () => new StdioSession(server),
    stop: async () => {
      server.abandon('the target stopped');
      server.child.stdin!.end();
      const exited = new Promise<void>((r) => (server.child.exitCode !== null ? r() : server.child.once('exit', () => r())));
      await within(exited, 3000, 'server exit').catch(() => {
        try {
          process.kill(-server.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      });
    },
  };
}

function authBlock(validateUrl: string): Record<string, unknown> {
  return {
    type: 'oauth2',
    flow: 'pkce',
    authorization_url: 'http://127.0.0.1:1/auth',
    token_url: 'http://127.0.0.1:1/token',
    scopes: ['x'],
    client_id_env: 'BENCH_CLIENT_ID',
    env_var_name: 'BENCH_TOKEN',
    validate_url: validateUrl,
  };
}

/** A userinfo endpoint that knows every token: the gateway verifies each bench token once, then uses its cache. */
async function startTokenValidator(): Promise<{ url: string; close(): void }> {
  const server = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"sub":"bench"}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/userinfo`, close: () => void server.close() };
}

async function startHttpTarget(
  name: TargetName,
  command: string,
  args: (port: number) => string[],
  path: string,
  streamPath: string | undefined,
  options: { env?: NodeJS.ProcessEnv; readyText?: string; probeToken?: string; cleanup?: () => void; groupPath?: string },
): Promise<RunningTarget> {
  const port = await freePort();
  const proc = new TargetProcess(command, args(port), { ...process.env, ...options.env });
  const agent = keepAliveAgent();
  const session = (o: SessionOptions = {}): Session => {
    const viaAgent = o.client === 'agent' ? agent : undefined;
    let [at, tool] = [path, 'echo'];
    if (o.endpoint === 'group') {
      if (options.groupPath === undefined) throw new Error(`bench bug: ${name} was started without a group`);
      [at, tool] = [options.groupPath, GROUP.tool];
    }
    if (o.era === 'modern') return new ModernSession(port, at, o.token, viaAgent, tool);
    return new HttpSession(port, at, o.endpoint === 'group' ? undefined : streamPath, o.token, viaAgent, tool);
  };
  const stop = async (): Promise<void> => {
    agent.destroy();
    await proc.stop();
    options.cleanup?.();
  };
  try {
    if (options.readyText !== undefined) {
      await within(Promise.race([proc.waitForOutput(options.readyText), proc.exited]), START_TIMEOUT_MS, `${name} start`);
    }
    await waitReady(proc, () => session({ token: options.probeToken }), name);
    if (options.groupPath !== undefined) await probeGroup(session({ token: options.probeToken, endpoint: 'group' }), options.groupPath);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, pid: proc.pid, hasSessions: true, hasHttp: true, session, stop };
}


async function startGateway(options: TargetOptions): Promise<RunningTarget> {
  const dir = mkdtempSync(join(tmpdir(), 'fluidmcp-bench-'));
  const [cmd, args] = upstreamCommand();
  const entry: Record<string, unknown> = { command: cmd, args };
  const validator = options.auth ? await startTokenValidator() : undefined;
  if (validator) entry['auth'] = authBlock(validator.url);
  const config = join(dir, 'config.json');
  // the group's members run the same server as the plain gateway, so /g/mcp and /everything/mcp reach one process
  const servers = options.group ? Object.fromEntries(GROUP.members.map((m) => [m, entry])) : { [SERVER_NAME]: entry };
  const groups = options.group ? { groups: { [GROUP.name]: { servers: [...GROUP.members] } } } : {};
  writeFileSync(config, JSON.stringify({ mcpServers: servers, ...groups }));
  // start it as the `fluidmcp` bin would: with the Node flags of its shebang line
  const nodeArgs = [...(options.nodeFlags ?? binNodeFlags(cliPath)), ...(options.profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [])];
  return startHttpTarget(
    'gateway',
    process.execPath,
    (port) => [...nodeArgs, cliPath, 'run', '--file', config, '--start-server', '--port', String(port)],
    `/${SERVER_NAME}/mcp`,
    `/${SERVER_NAME}/sse`,
    {
      // given flags are the whole set: no relaunch to add the bin's
      env: { ...(options.auth ? { BENCH_CLIENT_ID: 'fluidmcp-bench' } : {}), ...(options.nodeFlags ? { FMCP_NODE_FLAGS: 'off' } : {}) },
      readyText: 'gateway ready at',
      probeToken: options.auth ? (options.probeToken ?? 'fluidmcp-bench-probe') : undefined,
      groupPath: options.group ? `/${GROUP.name}/mcp` : undefined,
      cleanup: () => {
        validator?.close();
        rmSync(dir, { recursive: true, force: true });
      },
    },
  );
}

function startMcpProxy(): Promise<RunningTarget> {
  const [cmd, args] = upstreamCommand();
  const script = realpathSync(join(repoRoot, 'node_modules', '.bin', 'mcp-proxy'));
  return startHttpTarget(
    'mcp-proxy',
    process.execPath,
    (port) => [script, '--port', String(port), '--host', '127.0.0.1', '--server', 'stream', '--', cmd, ...args],
    '/mcp',
    undefined,
    {},
  );
}

function startSupergateway(): Promise<RunningTarget> {
  const [cmd, args] = upstreamCommand();
  const script = realpathSync(join(repoRoot, 'node_modules', '.bin', 'supergateway'));
  return startHttpTarget(
    'supergateway',
    process.execPath,
    (port) => [script, '--stdio', [cmd, ...args].join(' '), '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none'],
    '/mcp',
    undefined,
    {},
  );
}

/** bench/floor-server.ts: node:http answering the bench's client itself, no upstream (the ceiling) */
function startFloor(): Promise<RunningTarget> {
  const script = join(repoRoot, 'dist', 'bench', 'floor-server.js');
  return startHttpTarget('floor', process.execPath, (port) => [script, '--port', String(port)], '/mcp', undefined, { readyText: 'floor ready at' });
}

/** bench/relay-server.ts: node:http relaying to the shared upstream with nothing else (the ceiling with an upstream) */
function startRelay(): Promise<RunningTarget> {
  const [cmd, args] = upstreamCommand();
  const script = join(repoRoot, 'dist', 'bench', 'relay-server.js');
  return startHttpTarget('relay', process.execPath, (port) => [script, '--port', String(port), '--', cmd, ...args], '/mcp', undefined, { readyText: 'relay ready at' });
}

/** Starts one target on the shared upstream command; rejects with a one-line reason when it cannot. */
export function startTarget(name: TargetName, options: TargetOptions = {}): Promise<RunningTarget> {
  switch (name) {
    case 'direct':
      return startDirect();
    case 'gateway':
      return startGateway(options);
    case 'mcp-proxy':
      return startMcpProxy();
    case 'supergateway':
      return startSupergateway();
    case 'floor':
      return startFloor();
    case 'relay':
      return startRelay();
  }
}
