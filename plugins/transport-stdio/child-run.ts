import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { JsonObject, Logger } from '../../core/index.js';
import { LineFramer, type LineSink } from './line-framer.js';
import { StderrReader, truncate } from './stderr-reader.js';

const WARN_LINE_CHARS = 200;
/** non-JSON stdout lines logged at warn per run; the rest go to debug */
const MAX_LINE_WARNINGS = 10;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One child process: its pipes, its framing, and whether it is still the current one. */
export class Run implements LineSink {
  readonly pid: number | undefined;
  startedAt = Date.now();
  exitedFlag = false;
  /** false once `down` was reported for this run: late output is ignored */
  delivering = true;
  /** set when the gateway ended this run because it hung: what its exit is reported as */
  endedBecause: string | undefined;
  readonly exited: Promise<void>;
  readonly stdoutClosed: Promise<void>;
  readonly stderr: StderrReader;
  private readonly framer: LineFramer;
  private lineWarnings = 0;
  private stdinWarned = false;
  private markExited!: () => void;

  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    private readonly log: Logger,
    private readonly deliver: (message: JsonObject) => void,
    private readonly maxLineBytes: number,
    stderrLines?: ConstructorParameters<typeof StderrReader>[1],
    secrets: readonly string[] = [],
  ) {
    this.pid = child.pid;
    this.exited = new Promise((r) => {
      this.markExited = r;
    });
    this.stderr = new StderrReader(log, stderrLines, secrets);
    this.framer = new LineFramer(maxLineBytes, this);
    child.stdout.on('data', (chunk: Buffer) => {
      if (this.delivering) this.framer.push(chunk);
    });
    child.stdout.on('end', () => {
      if (this.delivering) this.framer.end();
    });
    this.stdoutClosed = new Promise((r) => child.stdout.once('close', r));
    child.stderr.on('data', (chunk: Buffer) => this.stderr.push(chunk));
    child.stderr.on('end', () => this.stderr.end());
    child.stdout.on('error', (err) => log.debug({ error: err.message }, 'server stdout error'));
    child.stderr.on('error', (err) => log.debug({ error: err.message }, 'server stderr error'));
    // EPIPE and friends: the server closed its stdin or died; its exit is handled elsewhere
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (this.stdinWarned) return;
      this.stdinWarned = true;
      log.warn({ error: err.code ?? err.message }, 'cannot write to the server\'s stdin (it closed it or exited)');
    });
  }

  setExited(): void {
    this.exitedFlag = true;
    this.markExited();
  }

  line(buf: Buffer, start: number, end: number): void {
    const text = buf.toString('utf8', start, end);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      if (text.trim() !== '') this.skip(text, 'is not JSON');
      return;
    }
    if (isJsonObject(value)) this.deliver(value);
    else if (Array.isArray(value) && value.length > 0 && value.every(isJsonObject)) for (const item of value) this.deliver(item);
    else this.skip(text, 'is not a JSON object');
  }

  oversize(bytes: number): void {
    this.log.warn({ bytes, maxLineBytes: this.maxLineBytes }, 'dropped a stdout line longer than the limit (raise maxLineBytes of transport-stdio if the server really sends such messages)');
  }

  private skip(text: string, why: string): void {
    const line = truncate(text, WARN_LINE_CHARS);
    if (this.lineWarnings < MAX_LINE_WARNINGS) {
      this.lineWarnings++;
      const more = this.lineWarnings === MAX_LINE_WARNINGS ? ' (further such lines are logged at debug level)' : '';
      this.log.warn({ line }, `skipped a stdout line that ${why}: an MCP server must write only JSON-RPC messages to stdout, logs belong on stderr${more}`);
    } else {
      this.log.debug({ line }, `skipped a stdout line that ${why}`);
    }
  }
}
