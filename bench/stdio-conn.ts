import { spawn, type ChildProcess } from 'node:child_process';

/** A JSON-RPC message as the driver sees it; only the fields it checks. */
export interface RpcMessage {
  jsonrpc?: string;
  id?: number | string | null;
  method?: string;
  params?: { progressToken?: string | number; progress?: number; [key: string]: unknown };
  result?: { content?: { type?: string; text?: string }[]; [key: string]: unknown };
  error?: { code?: number; message?: string };
}

type Waiter = { resolve: (m: RpcMessage) => void; reject: (e: Error) => void };

/**
 * The limit: the driver speaks newline-delimited JSON to the server's stdin and stdout itself,
 * with no HTTP and no gateway in between. Every client shares the one pipe, as stdio allows.
 */
export class StdioServer {
  readonly child: ChildProcess;
  private readonly waiting = new Map<number, Waiter>();
  private readonly progress = new Map<string, (m: RpcMessage) => void>();
  private tail = '';
  private nextId = 1;
  private exited: Error | undefined;
  readonly stderrTail: string[] = [];

  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (text: string) => this.onData(text));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => {
      this.stderrTail.push(text);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
    });
    this.child.stdin!.on('error', () => undefined);
    this.child.on('exit', (code, signal) => {
      this.exited = new Error(`the server exited (${signal ?? `code ${code}`})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
    this.child.on('error', (err) => {
      this.exited = err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private onData(text: string): void {
    let start = 0;
    let nl = text.indexOf('\n');
    if (nl < 0) {
      this.tail += text;
      return;
    }
    let line = this.tail + text.slice(0, nl);
    this.tail = '';
    for (;;) {
      if (line.length > 0) this.onLine(line);
      start = nl + 1;
      nl = text.indexOf('\n', start);
      if (nl < 0) break;
      line = text.slice(start, nl);
    }
    this.tail = text.slice(start);
  }

  private onLine(line: string): void {
    let msg: RpcMessage;
    try {
      msg = JSON.parse(line) as RpcMessage;
    } catch {
      return;
    }
    if (msg.method === undefined && typeof msg.id === 'number') {
      const w = this.waiting.get(msg.id);
      if (w) {
        this.waiting.delete(msg.id);
        w.resolve(msg);
      }
      return;
    }
    if (msg.method === 'notifications/progress' && msg.params?.progressToken !== undefined) {
      this.progress.get(String(msg.params.progressToken))?.(msg);
      return;
    }
    if (msg.method !== undefined && msg.id !== undefined) {
      // a server-to-client request: this client declares no capabilities, so refuse it
      this.child.stdin!.write(`{"jsonrpc":"2.0","id":${JSON.stringify(msg.id)},"error":{"code":-32601,"message":"not supported by the bench"}}\n`);
    }
  }

  /** A fresh numeric id for a request on this pipe. */
  id(): number {
    return this.nextId++;
  }

  /** Writes one request line (already serialized with `id`) and resolves with its answer. */
  send(id: number, line: string): Promise<RpcMessage> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise<RpcMessage>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin!.write(line);
    });
  }

  notify(line: string): void {
    if (!this.exited) this.child.stdin!.write(line);
  }

  onProgress(token: string, fn: ((m: RpcMessage) => void) | undefined): void {
    if (fn) this.progress.set(token, fn);
    else this.progress.delete(token);
  }

  /** Fails every call still waiting (the window is over and they are counted as errors). */
  abandon(reason: string): void {
    const err = new Error(reason);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
