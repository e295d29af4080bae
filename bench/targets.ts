import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentConnection, keepAliveAgent } from './agent-conn.js';
import { HttpConnection, type HttpAnswer } from './http-conn.js';
import type { Agent } from 'node:http';
import { descendantsOf, startTimeOf } from './procfs.js';
import { StdioServer, type RpcMessage } from './stdio-conn.js';
import { binNodeFlags } from '../cli/bin-flags.js';

/** The repository root, from dist/bench/. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const everythingServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
const SERVER_NAME = 'everything';
const PROTOCOL = '2025-06-18';
const START_TIMEOUT_MS = 30_000;

export type TargetName = 'direct' | 'gateway' | 'mcp-proxy' | 'supergateway';
/** `raw`: the bench's own keep-alive socket client; `agent`: `http.request` through a keep-alive `http.Agent` */
export type ClientKind = 'raw' | 'agent';
export const CLIENT_KINDS: ClientKind[] = ['raw', 'agent'];
export const ALL_TARGETS: TargetName[] = ['direct', 'gateway', 'mcp-proxy', 'supergateway'];

/** One client's view of a target: a session, echo calls, a streamed call with progress. */
export interface Session {
  open(): Promise<void>;
  /** one `tools/call echo`; throws unless the answer carries this call's id and echoes `message` */
  echo(message: string): Promise<void>;
  /** one `trigger-long-running-operation` call whose progress events and answer come back as a stream */
  stream(token: string): Promise<void>;
  /** ends the session (DELETE) */
  close(): Promise<void>;
  /** drops the connection; a call in flight fails */
  destroy(reason?: string): void;
}

export interface RunningTarget {
  name: TargetName;
  /** the front process: the gateway or proxy, or the server itself for `direct` */
  pid: number;
  /** sessions with their own initialize and DELETE (false for `direct`: stdio is one session) */
  hasSessions: boolean;
  /** false for `direct`: the client kind does not apply */
  hasHttp: boolean;
  session(options?: { token?: string; client?: ClientKind }): Session;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** a `--cpu-prof-dir` for the gateway process */
  profileDir?: string;
  /** the config's server gets an oauth2/pkce auth block */
  auth?: boolean;
  /** the Bearer token of the readiness probe (with `auth`) */
  probeToken?: string;
}

export const STREAM_STEPS = 2;
// no sleeping in the tool: the rate shows the cost of streaming, not the server's timers
const STREAM_ARGS = `{"duration":0,"steps":${STREAM_STEPS}}`;

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

function echoText(msg: RpcMessage, id: number, message: string): void {
  if (msg.id !== id) throw new Error(`answer carries id ${JSON.stringify(msg.id)}, the request had ${id}`);
  if (msg.error) throw new Error(`JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
  const text = msg.result?.content?.[0]?.text;
  if (text !== `Echo: ${message}`) throw new Error(`the answer echoes "${String(text).slice(0, 60)}", the request sent "${message}"`);
}

function checkStream(msg: RpcMessage | undefined, id: number, progress: number): void {
  if (!msg) throw new Error(`the stream ended without the answer to request ${id}`);
  if (msg.id !== id) throw new Error(`answer carries id ${JSON.stringify(msg.id)}, the request had ${id}`);
  if (msg.error) throw new Error(`JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
  const text = msg.result?.content?.[0]?.text ?? '';
  if (!text.startsWith('Long running operation completed')) throw new Error(`unexpected answer "${text.slice(0, 60)}"`);
  if (progress !== STREAM_STEPS) throw new Error(`${STREAM_STEPS} progress events expected before the answer, got ${progress}`);
}

/** The JSON-RPC messages of an answer: one JSON body, or the `data:` lines of an event stream. */
function messagesOf(answer: HttpAnswer): RpcMessage[] {
  const type = answer.headers['content-type'] ?? '';
  if (!type.startsWith('text/event-stream')) return [JSON.parse(answer.body) as RpcMessage];
  const out: RpcMessage[] = [];
  let data = '';
  for (const line of answer.body.split('\n')) {
    if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
    else if (line === '' || line === '\r') {
      if (data !== '') out.push(JSON.parse(data) as RpcMessage);
      data = '';
    }
  }
  if (data !== '') out.push(JSON.parse(data) as RpcMessage);
  return out;
}

function httpError(answer: HttpAnswer): Error {
  return new Error(`HTTP ${answer.status}: ${answer.body.replace(/\s+/g, ' ').slice(0, 160)}`);
}

/** A Streamable HTTP client session over one keep-alive connection, with pre-serialized heads. */
class HttpSession implements Session {
  private readonly conn: HttpConnection | AgentConnection;
  private head: string;
  private readonly baseHead: string;
  private nextId = 1;
  private sessionId: string | undefined;

  constructor(
    port: number,
    private readonly path: string,
    private readonly streamPath: string | undefined,
    token: string | undefined,
    agent: Agent | undefined,
  ) {
    this.conn = agent ? new AgentConnection('127.0.0.1', port, agent) : new HttpConnection('127.0.0.1', port);
    const auth = token !== undefined ? `Authorization: Bearer ${token}\r\n` : '';
    this.baseHead = `Host: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${auth}`;
    this.head = `POST ${path} HTTP/1.1\r\n${this.baseHead}`;
  }

  async open(): Promise<void> {
    const body = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"${PROTOCOL}","capabilities":{},"clientInfo":{"name":"fluidmcp-bench","version":"1"}}}`;
    const answer = await this.conn.request(this.head, body);
    if (answer.status !== 200) throw httpError(answer);
    const msg = messagesOf(answer).find((m) => m.id === 0);
    if (!msg?.result) throw new Error(`initialize failed: ${msg?.error?.message ?? answer.body.slice(0, 160)}`);
    const version = typeof msg.result['protocolVersion'] === 'string' ? msg.result['protocolVersion'] : PROTOCOL;
    this.sessionId = answer.headers['mcp-session-id'];
    const session = this.sessionId !== undefined ? `Mcp-Session-Id: ${this.sessionId}\r\n` : '';
    this.head = `POST ${this.path} HTTP/1.1\r\n${this.baseHead}${session}MCP-Protocol-Version: ${version}\r\n`;
    const note = await this.conn.request(this.head, '{"jsonrpc":"2.0","method":"notifications/initialized"}');
    if (note.status !== 202 && note.status !== 200 && note.status !== 204) throw httpError(note);
  }

  async echo(message: string): Promise<void> {
    const id = this.nextId++;
    const answer = await this.conn.request(this.head, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"${message}"}}}`);
    if (answer.status !== 200) throw httpError(answer);
    const msgs = messagesOf(answer);
    echoText(msgs.find((m) => m.id === id) ?? msgs[msgs.length - 1]!, id, message);
  }

  async stream(token: string): Promise<void> {
    const id = this.nextId++;
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":${STREAM_ARGS},"_meta":{"progressToken":"${token}"}}}`;
    // the gateway's POST /{name}/sse takes a bare call; the peers stream it as the SSE answer of /mcp
    const head = this.streamPath !== undefined ? `POST ${this.streamPath} HTTP/1.1\r\n${this.baseHead}` : this.head;
    const answer = await this.conn.request(head, body);
    if (answer.status !== 200) throw httpError(answer);
    if (!(answer.headers['content-type'] ?? '').startsWith('text/event-stream')) throw new Error(`the answer is ${answer.headers['content-type']}, not an event stream`);
    const msgs = messagesOf(answer);
    const progress = msgs.filter((m) => m.method === 'notifications/progress' && m.params?.progressToken === token).length;
    checkStream(msgs.find((m) => m.id !== undefined && m.method === undefined), id, progress);
  }

  async close(): Promise<void> {
    if (this.sessionId === undefined) return;
    const head = this.head.replace(/^POST /, 'DELETE ').replace('Content-Type: application/json\r\n', '');
    const answer = await this.conn.request(head, '');
    this.sessionId = undefined;
    if (answer.status >= 300 && answer.status !== 405) throw httpError(answer);
  }

  destroy(reason?: string): void {
    this.conn.destroy(reason);
  }
}

/** A client of the direct target: ids unique on the shared pipe, no HTTP. */
class StdioSession implements Session {
  private dead: string | undefined;
  constructor(private readonly server: StdioServer) {}

  async open(): Promise<void> {}

  async echo(message: string): Promise<void> {
    if (this.dead) throw new Error(this.dead);
    const id = this.server.id();
    const msg = await this.server.send(id, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"${message}"}}}\n`);
    echoText(msg, id, message);
  }

  async stream(token: string): Promise<void> {
    if (this.dead) throw new Error(this.dead);
    const id = this.server.id();
    let progress = 0;
    this.server.onProgress(token, () => progress++);
    try {
      const msg = await this.server.send(id, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":${STREAM_ARGS},"_meta":{"progressToken":"${token}"}}}\n`);
      checkStream(msg, id, progress);
    } finally {
      this.server.onProgress(token, undefined);
    }
  }

  async close(): Promise<void> {}

  destroy(reason = 'stopped by the bench'): void {
    this.dead = reason;
    this.server.abandon(reason);
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
  options: { env?: NodeJS.ProcessEnv; readyText?: string; probeToken?: string; cleanup?: () => void },
): Promise<RunningTarget> {
  const port = await freePort();
  const proc = new TargetProcess(command, args(port), { ...process.env, ...options.env });
  const agent = keepAliveAgent();
  const session = (o?: { token?: string; client?: ClientKind }): Session => new HttpSession(port, path, streamPath, o?.token, o?.client === 'agent' ? agent : undefined);
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
  writeFileSync(config, JSON.stringify({ mcpServers: { [SERVER_NAME]: entry } }));
  // start it as the `fluidmcp` bin would: with the Node flags of its shebang line
  const nodeArgs = [...binNodeFlags(cliPath), ...(options.profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [])];
  return startHttpTarget(
    'gateway',
    process.execPath,
    (port) => [...nodeArgs, cliPath, 'run', '--file', config, '--start-server', '--port', String(port)],
    `/${SERVER_NAME}/mcp`,
    `/${SERVER_NAME}/sse`,
    {
      env: options.auth ? { BENCH_CLIENT_ID: 'fluidmcp-bench' } : {},
      readyText: 'gateway ready at',
      probeToken: options.auth ? (options.probeToken ?? 'fluidmcp-bench-probe') : undefined,
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
  }
}
