import { readFileSync } from 'node:fs';
import { createLogger, type JsonObject, type Logger, type ServerDefinition, type UpstreamListener } from '../../../core/index.js';

export type ListenerEvent = { kind: 'up' } | { kind: 'down'; error: Error; willRetry: boolean };

/** An UpstreamListener that records what it is told and lets a test wait for it. */
export class Recorder implements UpstreamListener {
  readonly messages: JsonObject[] = [];
  readonly events: ListenerEvent[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

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

  /** Resolves once `check` holds; fails the test after `ms`. */
  until(check: () => boolean, what: string, ms = 5000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The message answering request `id`. */
  async answer(id: number | string, ms = 5000): Promise<JsonObject> {
    await this.until(() => this.messages.some((m) => m.id === id), `the answer to request ${id}`, ms);
    return this.messages.find((m) => m.id === id)!;
  }

  downs(): Extract<ListenerEvent, { kind: 'down' }>[] {
    return this.events.filter((e): e is Extract<ListenerEvent, { kind: 'down' }> => e.kind === 'down');
  }

  private wake(): void {
    for (const w of [...this.waiters]) {
      if (w.check()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}

/** A logger whose lines land in an array, to assert what was logged. */
export function captureLogger(level = 'debug'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level, destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { log, lines };
}

export function serverDef(name: string, command: string, args: string[], dir: string, env?: Record<string, string>): ServerDefinition {
  return { name, entry: { command, args, ...(env ? { env } : {}) }, source: `/packages/test/${name}/metadata.json`, dir, transport: '' };
}

/**
 * True while the process exists and is not a zombie. A killed grandchild is reparented to pid 1,
 * which on some machines (this CI's VM init) never reaps it: a zombie runs nothing and holds nothing.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

export async function waitUntil(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
