import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cliPath, everythingServer } from './paths.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** fail if the process has not exited by then, ms */
  timeout?: number;
}

function spawnCli(args: string[], options: CliOptions): ChildProcess {
  return spawn(process.execPath, [cliPath, ...args], {
    cwd: options.cwd,
    env: { ...process.env, FMCP_LOG_LEVEL: undefined, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs `fluidmcp <args>` to its end. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return collect(spawnCli(args, options), `fluidmcp ${args.join(' ')}`, options.timeout ?? 15_000);
}

/** Runs any command to its end (env on top of this process's), with the same result and bound as runCli. */
export function runCommand(command: string, args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return collect(child, `${command} ${args.join(' ')}`.slice(0, 80), options.timeout ?? 15_000);
}

function collect(child: ChildProcess, what: string, timeout: number): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not exit within ${timeout} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeout);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `fluidmcp run ... --start-server` that keeps running until the test stops it. */
export class RunningCli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;
  private readonly child: ChildProcess;
  private exitedFlag = false;

  constructor(args: string[], options: CliOptions = {}) {
    this.child = spawnCli(args, options);
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exitedFlag = true;
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits until stdout or stderr matches; fails after `ms` or when the process exits first. */
  async waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const match = this[stream].match(pattern);
      if (match) return match;
      if (this.exitedFlag) throw new Error(`fluidmcp exited before ${stream} matched ${pattern}; stdout: ${this.stdout} stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`${stream} did not match ${pattern} within ${ms} ms; stdout: ${this.stdout} stderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The gateway's URL once it printed its ready line. */
  async ready(ms = 15_000): Promise<string> {
    return (await this.waitFor('stdout', /FluidMCP gateway ready at (\S+)[^\n]*\n/, ms))[1]!;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exitedFlag) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; SIGKILLs and fails if it takes longer than `ms`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 12_000): Promise<CliResult> {
    if (this.exitedFlag) return this.exited;
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`fluidmcp did not exit within ${ms} ms of ${signal}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A temporary folder; `files` maps relative paths to contents (objects are written as JSON). */
export function tempTree(files: Record<string, unknown> = {}): { root: string; write(path: string, content: unknown): string; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), 'fmcp-cli-'));
  const write = (path: string, content: unknown): string => {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return file;
  };
  for (const [path, content] of Object.entries(files)) write(path, content);
  return { root, write, remove: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * A metadata.json whose servers run @modelcontextprotocol/server-everything over stdio. The server
 * ignores extra arguments, so `marker` tags its processes for `processesWith`.
 */
export function everythingMetadata(names: string[], marker?: string): { mcpServers: Record<string, { command: string; args: string[] }> } {
  const args = marker ? [everythingServer, 'stdio', marker] : [everythingServer, 'stdio'];
  return { mcpServers: Object.fromEntries(names.map((name) => [name, { command: process.execPath, args }])) };
}

/** Live processes whose command line contains `marker` (Linux /proc). */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) found.push(Number(entry));
    } catch {
      // it ended while we looked
    }
  }
  return found;
}

/**
 * The error lines of a failed run: stderr may hold pino JSON log lines; the user's line is the one
 * that is not JSON. Asserting helpers use this to check "exactly one clear line, no stack trace".
 */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));
}

/**
 * A temporary folder for the calling `describe`: made in a `before` hook and removed in an `after` hook,
 * so a suite that --grep leaves out makes none (a `tempTree()` in a describe body is made at load time
 * and only removed when the suite runs). `root` and `write` work from the suite's hooks and tests on.
 */
export function suiteTempTree(files: Record<string, unknown> = {}): { readonly root: string; write(path: string, content: unknown): string } {
  let tree: ReturnType<typeof tempTree> | undefined;
  const made = (): ReturnType<typeof tempTree> => {
    if (!tree) throw new Error('suiteTempTree: the folder is made in a before hook: use it from hooks and tests, not the describe body');
    return tree;
  };
  before(() => {
    tree = tempTree(files);
  });
  after(() => {
    tree?.remove();
    tree = undefined;
  });
  return {
    get root() {
      return made().root;
    },
    write: (path, content) => made().write(path, content),
  };
}
