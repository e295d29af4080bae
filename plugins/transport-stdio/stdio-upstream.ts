import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { statSync } from 'node:fs';
import {
  errors,
  FluidError,
  type JsonObject,
  type Logger,
  type ServerDefinition,
  type Upstream,
  type UpstreamListener,
  type UpstreamOptions,
  type UpstreamState,
  type UpstreamStatus,
} from '../../core/index.js';
import { authVariables, childEnvironment } from './child-env.js';
import { Run } from './child-run.js';
import { groupAlive, signalGroup, trackGroup, untrackGroup } from './process-groups.js';
import { secretValues, type StderrReader, truncate } from './stderr-reader.js';

/** Settings of the stdio transport; every field has a default. */
export interface StdioOptions {
  /** first restart delay after a crash, ms (default 500); doubles with each failed start */
  restartBaseMs?: number;
  /** longest restart delay, ms (default 60 000): a failed server is still tried this often */
  restartMaxMs?: number;
  /** consecutive failed starts before the server counts as 'failed': calls then fail at once, and it is still retried (default 5) */
  maxFailedStarts?: number;
  /** a run shorter than this counts as a failed start; a longer one resets the backoff, ms (default 10 000) */
  stableAfterMs?: number;
  /** how long each stop step waits (stdin closed, then SIGTERM, then SIGKILL), ms (default 2 000) */
  stopGraceMs?: number;
  /** longest stdout line kept; a longer one is logged and dropped (default 64 MiB) */
  maxLineBytes?: number;
}

export type ResolvedStdioOptions = Required<StdioOptions>;

export const STDIO_DEFAULTS: ResolvedStdioOptions = {
  restartBaseMs: 500,
  restartMaxMs: 60_000,
  maxFailedStarts: 5,
  stableAfterMs: 10_000,
  stopGraceMs: 2_000,
  maxLineBytes: 64 * 1024 * 1024,
};

/** Time to wait for stdout to drain after the process exited, so its last answers come before `down`. */
const DRAIN_AFTER_EXIT_MS = 250;
const KILL_WAIT_MS = 2_000;
const GROUP_POLL_MS = 25;

const formatMs = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`);

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves true when `promise` settles within `ms`, false otherwise; the timer never outlives it. */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

/** A server run as a child process speaking newline-delimited JSON-RPC on stdin/stdout. */
export class StdioUpstream implements Upstream {
  private readonly server: ServerDefinition;
  private readonly log: Logger;
  private readonly settings: ResolvedStdioOptions;
  private readonly env: Readonly<Record<string, string>>;
  private readonly stderrLines: ConstructorParameters<typeof StderrReader>[1];
  private readonly statusValue: UpstreamStatus = { state: 'down', restarts: 0 };
  private listener: UpstreamListener | undefined;
  private run: Run | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failedStarts = 0;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** what the listener was last told */
  private listenerHeard: 'nothing' | 'up' | 'down' | 'failed' = 'nothing';
  private listenerFinal = false;
  private everUp = false;
  private readonly deliver = (message: JsonObject): void => {
    try {
      this.listener!.message(message);
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'the upstream listener failed on a message');
    }
  };

  constructor(
    options: UpstreamOptions,
    settings: ResolvedStdioOptions,
    private readonly onStopped?: () => void,
    /** variables no child may inherit (every auth block's); default: this server's auth block's */
    private readonly withheldEnv?: () => ReadonlySet<string>,
  ) {
    this.server = options.server;
    this.env = options.env;
    this.settings = settings;
    this.log = options.log.child({ upstream: options.label });
    const events = options.events;
    const server = options.server.name;
    const label = options.label;
    this.stderrLines = events && {
      wants: () => events.listening('upstream.stderr'),
      line: (line: string) => events.emit('upstream.stderr', { server, label, line }),
    };
  }

  get status(): UpstreamStatus {
    return this.statusValue;
  }

  get serverName(): string {
    return this.server.name;
  }

  async start(listener: UpstreamListener): Promise<void> {
    if (this.listener) throw errors.FMCP_ERR_INTERNAL(`the stdio upstream of server "${this.server.name}" was started twice`);
    if (this.stopping) throw this.unavailable('it was stopped');
    this.listener = listener;
    this.setState('starting');
    let run: Run;
    try {
      run = await this.spawnRun();
    } catch (err) {
      if (this.stopping) throw this.unavailable('it was stopped while starting');
      // not installed yet, not executable, no folder: failed, and tried again like any failed start
      this.spawnFailed(err as NodeJS.ErrnoException);
      return;
    }
    if (this.stopping) throw this.unavailable('it was stopped while starting');
    this.becameUp(run);
  }

  send(message: JsonObject | string): void {
    const run = this.run;
    if (this.statusValue.state !== 'up' || !run || run.exitedFlag) throw this.unavailable(this.whyUnavailable());
    let text: string;
    if (typeof message !== 'string') text = JSON.stringify(message);
    else if (message.includes('\n')) {
      // pretty-printed JSON would break the line framing: re-serialize it on one line
      try {
        text = JSON.stringify(JSON.parse(message));
      } catch (err) {
        throw errors.FMCP_ERR_BAD_REQUEST(`The message for server "${this.server.name}" is not valid JSON: ${(err as Error).message}`);
      }
    } else text = message;
    // messages sent in one turn of the event loop go out in one write: one syscall for many calls
    this.outgoing += text + '\n';
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private outgoing = '';
  private flushScheduled = false;
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const text = this.outgoing;
    this.outgoing = '';
    const run = this.run;
    if (!run || run.exitedFlag || text === '') return;
    run.child.stdin.write(text);
  };

  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  /** The process hung: down at once, then SIGTERM and SIGKILL to its group; its exit restarts it as a crash does. */
  restart(reason: string): void {
    const run = this.run;
    if (this.stopping || !run || run.exitedFlag || run.endedBecause !== undefined || this.statusValue.state !== 'up') return;
    run.endedBecause = reason;
    this.statusValue.lastError = `process ${run.pid} (command "${truncate(this.server.entry.command!, 200)}") ${reason}`;
    this.setState('down');
    this.notifyDown(this.unavailable(`the process ${reason}`), true);
    // no stdin step: a hung server does not read it
    void this.terminate(run, false);
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.setState('stopped');
    if (this.everUp) this.notifyDown(this.unavailable('it was stopped'), false);
    const run = this.run;
    if (run) await this.terminate(run);
    delete this.statusValue.pid;
    this.onStopped?.();
  }

  /** stdin closed (unless `closeStdin` is false), then SIGTERM, then SIGKILL, each to the whole process group, each bounded. */
  private async terminate(run: Run, closeStdin = true): Promise<void> {
    const pid = run.pid;
    if (pid === undefined) return;
    const grace = this.settings.stopGraceMs;
    if (closeStdin) {
      try {
        run.child.stdin.end();
      } catch {
        // already closed
      }
      if (!run.exitedFlag) await within(run.exited, grace);
    }
    if (groupAlive(pid)) {
      this.log.debug({ pid }, 'sending SIGTERM to the server\'s process group');
      signalGroup(pid, 'SIGTERM');
      const deadline = Date.now() + grace;
      while (groupAlive(pid) && Date.now() < deadline) await delay(GROUP_POLL_MS);
    }
    if (groupAlive(pid)) {
      this.log.warn({ pid, graceMs: grace }, 'the server did not stop after stdin closed and SIGTERM: sending SIGKILL to its process group');
      signalGroup(pid, 'SIGKILL');
    }
    if (!run.exitedFlag && !(await within(run.exited, KILL_WAIT_MS))) {
      this.log.error({ pid }, 'the server process did not exit even after SIGKILL');
    }
    untrackGroup(pid);
    run.delivering = false;
    run.child.stdout.destroy();
    run.child.stderr.destroy();
  }

  /** Spawns the next run; rejects with the raw spawn error (ENOENT, EACCES…). */
  private spawnRun(): Promise<Run> {
    const { server } = this;
    const entry = server.entry;
    const command = entry.command!;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(command, entry.args ?? [], {
        cwd: server.dir,
        env: childEnvironment(server, this.env, this.withheldEnv?.() ?? authVariables([server])),
        shell: false,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      return Promise.reject(err as NodeJS.ErrnoException);
    }
    if (child.pid !== undefined) trackGroup(child.pid);
    const run = new Run(child, this.log, this.deliver, this.settings.maxLineBytes, this.stderrLines, secretValues(this.env, entry.env ?? {}, process.env));
    this.run = run;
    return new Promise((resolve, reject) => {
      let spawned = false;
      child.once('spawn', () => {
        spawned = true;
        resolve(run);
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (spawned) {
          this.log.warn({ error: err.message }, 'server process error');
          return;
        }
        run.setExited();
        run.delivering = false;
        if (run.pid !== undefined) untrackGroup(run.pid);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        run.setExited();
        if (spawned) void this.onExit(run, code, signal);
      });
    });
  }

  private becameUp(run: Run): void {
    run.startedAt = Date.now();
    this.statusValue.pid = run.pid;
    this.setState('up');
    this.listenerHeard = 'up';
    this.everUp = true;
    try {
      this.listener!.up();
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'the upstream listener failed on up');
    }
  }

  private async onExit(run: Run, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (this.stopping || run !== this.run) return;
    const how = run.endedBecause ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
    // a hung run was ended on purpose: whoever ended it said so at warn level
    if (run.endedBecause === undefined) this.log.warn({ pid: run.pid, exitCode: code, signal }, `server process ${how}`);
    else this.log.info({ pid: run.pid, exitCode: code, signal }, 'hung server process ended');
    this.setState('down');
    // whatever it started is orphaned now; it must not outlive it
    if (run.pid !== undefined) {
      signalGroup(run.pid, 'SIGKILL');
      untrackGroup(run.pid);
    }
    // its last answers may still sit in the pipe: deliver them before reporting it down
    await within(run.stdoutClosed, DRAIN_AFTER_EXIT_MS);
    run.delivering = false;
    if (this.stopping) return;
    const quick = Date.now() - run.startedAt < this.settings.stableAfterMs;
    this.failedStarts = quick ? this.failedStarts + 1 : 0;
    this.afterFailure(how, run.stderr.lastLines(), run.pid);
  }

  /**
   * A run ended or a restart could not spawn: restart with backoff, capped at restartMaxMs. After
   * maxFailedStarts quick failures in a row the server counts as failed (calls fail at once), and is
   * still retried, so it comes back by itself once its cause is fixed.
   */
  private afterFailure(how: string, stderrLines: string[], pid?: number): void {
    const tail = stderrLines.length > 0 ? `; last stderr: ${stderrLines.join(' | ')}` : '';
    const where = `mcpServers.${this.server.name} in ${this.server.source}`;
    delete this.statusValue.pid;
    const wait = this.backoff();
    if (this.failedStarts >= this.settings.maxFailedStarts) {
      const reason = `${how} ${this.failedStarts} times in a row within ${this.settings.stableAfterMs} ms of starting; trying again in ${formatMs(wait)} (fix the server or ${where}: it comes back by itself)${tail}`;
      this.statusValue.lastError = reason;
      this.setState('failed');
      this.log.error({ failedStarts: this.failedStarts, inMs: wait }, `server failed: ${reason}`);
      this.notifyDown(this.unavailable(reason), true);
    } else {
      const reason = `process${pid !== undefined ? ` ${pid}` : ''} (command "${truncate(this.server.entry.command!, 200)}") ${how}${tail}`;
      this.statusValue.lastError = reason;
      this.setState('down');
      this.log.info({ inMs: wait, failedStarts: this.failedStarts }, 'restarting the server');
      this.notifyDown(this.unavailable(reason), true);
    }
    this.restartTimer = setTimeout(() => void this.respawn(), wait);
  }

  /** The wait before the next start: restartBaseMs, doubling with each failed start in a row, capped at restartMaxMs. */
  private backoff(): number {
    return this.failedStarts === 0 ? this.settings.restartBaseMs : Math.min(this.settings.restartMaxMs, this.settings.restartBaseMs * 2 ** (this.failedStarts - 1));
  }

  /**
   * The command could not be spawned (ENOENT, EACCES, no working folder): nothing ran, so calls fail at
   * once (failed), and it is tried again with the same backoff as a quick crash, so it starts by itself
   * once the command exists.
   */
  private spawnFailed(err: NodeJS.ErrnoException): void {
    this.failedStarts++;
    const wait = this.backoff();
    const reason = `${this.startReason(err)}; trying again in ${formatMs(wait)} (it starts by itself once it can)`;
    delete this.statusValue.pid;
    this.statusValue.lastError = reason;
    const wasFailed = this.statusValue.state === 'failed';
    this.setState('failed');
    // the first failure at start is reported by whoever started it (the proxy logs it once); a server that
    // ran before and cannot be started again is news here; later tries are the retry, logged as such
    const level = !this.everUp && this.failedStarts === 1 ? 'debug' : wasFailed ? 'info' : 'warn';
    this.log[level]({ failedStarts: this.failedStarts, inMs: wait, error: reason }, 'the server could not be started; trying again');
    this.notifyDown(this.unavailable(reason), true);
    this.restartTimer = setTimeout(() => void this.respawn(), wait);
  }

  private async respawn(): Promise<void> {
    this.restartTimer = undefined;
    if (this.stopping) return;
    if (this.statusValue.state !== 'failed') this.setState('starting');
    let run: Run;
    try {
      run = await this.spawnRun();
    } catch (err) {
      if (this.stopping) return;
      this.spawnFailed(err as NodeJS.ErrnoException);
      return;
    }
    if (this.stopping) return;
    this.statusValue.restarts++;
    this.log.info({ pid: run.pid, restarts: this.statusValue.restarts }, 'server restarted');
    this.becameUp(run);
  }

  private notifyDown(error: FluidError, willRetry: boolean): void {
    if (this.listenerFinal) return;
    const failed = this.statusValue.state === 'failed';
    // each change is told once: up to down, down to failed; a listener that knows it is not up hears no repeats
    if (willRetry && (this.listenerHeard === 'failed' || (this.listenerHeard === 'down' && !failed))) return;
    this.listenerHeard = failed ? 'failed' : 'down';
    if (!willRetry) this.listenerFinal = true;
    try {
      this.listener?.down(error, willRetry);
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'the upstream listener failed on down');
    }
  }

  private setState(state: UpstreamState): void {
    this.statusValue.state = state;
  }

  private whyUnavailable(): string {
    switch (this.statusValue.state) {
      case 'starting':
        return 'it is starting; try again in a moment';
      case 'down':
        return `it is restarting after a crash (${this.statusValue.lastError ?? 'unknown cause'})`;
      case 'failed':
        return this.statusValue.lastError ?? 'it failed';
      case 'stopped':
        return 'it was stopped';
      default:
        return 'its process has exited';
    }
  }

  private unavailable(reason: string): FluidError {
    return errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(this.server.name, reason);
  }

  /** Why a spawn failed, and what to fix where. */
  private startReason(err: NodeJS.ErrnoException): string {
    const { server } = this;
    const command = truncate(server.entry.command!, 200);
    const where = `mcpServers.${server.name}`;
    let why: string;
    const folder = err.code === 'ENOENT' || err.code === 'ENOTDIR' ? folderProblem(server.dir) : undefined;
    if (folder) {
      why = `${folder}: check ${where}.cwd in ${server.source} (or the package's folder)`;
    } else if (err.code === 'ENOENT') {
      why = `command not found: check ${where}.command in ${server.source} (is it installed and on PATH?)`;
    } else if (err.code === 'EACCES') {
      why = `permission denied: ${where}.command in ${server.source} must name an executable file`;
    } else {
      why = err.message;
    }
    return `cannot start command "${command}": ${why}`;
  }
}

function folderProblem(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : `the working folder ${dir} is not a folder`;
  } catch {
    return `the working folder ${dir} does not exist`;
  }
}
