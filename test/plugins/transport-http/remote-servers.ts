import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { JsonObject, UpstreamListener } from '../../../core/index.js';
import { everythingServer, fixture } from '../../helpers/paths.js';

/** A port that was free a moment ago (server-everything reads its port from PORT and cannot report 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface RemoteServer {
  readonly port: number;
  /** the URL of its MCP endpoint */
  readonly url: string;
  /** SIGKILL, and waits for the exit */
  kill(): Promise<void>;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts a child and resolves once `ready` matches its output; fails after 10 s or if it exits. */
function startChild(args: string[], env: Record<string, string>, ready: RegExp, stream: 'stdout' | 'stderr'): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not start within 10 s; output: ${text}`));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const match = text.match(ready);
      if (match) {
        clearTimeout(timer);
        child[stream]!.off('data', onData);
        child[stream]!.resume();
        resolve({ child, match });
      }
    };
    child[stream]!.on('data', onData);
    // the other stream is drained so a chatty server never stalls
    child[stream === 'stdout' ? 'stderr' : 'stdout']!.resume();
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code} before it was ready; output: ${text}`));
    });
  });
}

const running = new Set<ChildProcess>();

/** server-everything in its streamableHttp (/mcp) or sse (/sse) mode on `port` (a free one by default). */
export async function startEverything(mode: 'streamableHttp' | 'sse', port?: number): Promise<RemoteServer> {
  const p = port ?? (await freePort());
  const { child } = await startChild([everythingServer, mode], { PORT: String(p) }, /(listening|running) on port/i, 'stderr');
  running.add(child);
  return {
    port: p,
    url: `http://127.0.0.1:${p}/${mode === 'sse' ? 'sse' : 'mcp'}`,
    kill: async () => {
      child.kill('SIGKILL');
      await waitForExit(child);
      running.delete(child);
    },
  };
}

/** test/fixtures/sse-remote.mjs: a JSON-answering Streamable HTTP server that records what it receives. */
export async function startFixture(): Promise<RemoteServer & { stats(): Promise<FixtureStats>; forget(): Promise<void> }> {
  const { child, match } = await startChild([fixture('sse-remote.mjs')], {}, /\{"port":(\d+)\}/, 'stdout');
  running.add(child);
  const port = Number(match[1]);
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    url: `${base}/mcp`,
    kill: async () => {
      child.kill('SIGKILL');
      await waitForExit(child);
      running.delete(child);
    },
    stats: async () => (await (await fetch(`${base}/_stats`)).json()) as FixtureStats,
    forget: async () => void (await fetch(`${base}/_forget`, { method: 'POST' })).arrayBuffer(),
  };
}

/** test/fixtures/modern-http-server.mjs: an SDK v2 server that speaks only 2026-07-28, stateless, recording each POST. */
export async function startModernRemote(onPort?: number): Promise<RemoteServer & { stats(): Promise<ModernStats> }> {
  const { child, match } = await startChild([fixture('modern-http-server.mjs')], onPort === undefined ? {} : { PORT: String(onPort) }, /\{"port":(\d+)\}/, 'stdout');
  running.add(child);
  const port = Number(match[1]);
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    url: `${base}/mcp`,
    kill: async () => {
      child.kill('SIGKILL');
      await waitForExit(child);
      running.delete(child);
    },
    stats: async () => (await (await fetch(`${base}/_stats`)).json()) as ModernStats,
  };
}

export interface ModernStats {
  seen: { method: string | null; header: string | null; name: string | null; version: string | null; metaVersion: string | null; session: string | null }[];
}

export interface FixtureStats {
  seen: { method: string | null; authorization: string | null; 'x-team': string | null; session: string | null; version: string | null; accept: string | null }[];
  deleted: string[];
  gets: number;
  sessions: number;
}

/** Kills every child this module started that a test did not kill itself. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      child.kill('SIGKILL');
      await waitForExit(child);
    }),
  );
  running.clear();
}

export type ListenerEvent = { kind: 'up' } | { kind: 'down'; error: Error; willRetry: boolean };

/** An UpstreamListener that records what it hears and lets a test wait for it. */
export class ListenerLog implements UpstreamListener {
  readonly messages: JsonObject[] = [];
  readonly events: ListenerEvent[] = [];
  private waiters: (() => void)[] = [];

  message(message: JsonObject): void {
    this.messages.push(message);
    this.wake();
  }
  up(): void {
    this.events.push({ kind: 'up' });
    this.wake();
  }
  down(error: Error, willRetry: boolean): void {
    this.events.push({ kind: 'down', error, willRetry });
    this.wake();
  }

  /** The message with this id, once it arrives. */
  async answer(id: number | string, ms = 10_000): Promise<JsonObject> {
    await this.until(() => this.messages.some((m) => m.id === id && m.method === undefined), `the answer to ${id}`, ms);
    return this.messages.find((m) => m.id === id && m.method === undefined)!;
  }

  until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.kind))}`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
