import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../../core/index.js';

const TAIL_BYTES = 4096;
const LOG_LINE_CHARS = 2000;
const ERROR_LINE_CHARS = 300;

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/**
 * Drains a server's stderr: a full pipe would stall the server. Lines go to the log at debug level;
 * the last few kilobytes are kept to explain a crash.
 */
export class StderrReader {
  private tail: Buffer = Buffer.alloc(0);
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  /**
   * `onLine` gets the lines the log does not take (below debug level), when it wants them; `secrets`:
   * values replaced by `[redacted]` in every line logged, handed on or quoted (see `secretValues`)
   */
  constructor(
    private readonly log: Logger,
    private readonly onLine?: { wants(): boolean; line(text: string): void },
    private readonly secrets: readonly string[] = [],
  ) {}

  private redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  }

  push(chunk: Buffer): void {
    if (chunk.length >= TAIL_BYTES) this.tail = Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES));
    else if (this.tail.length + chunk.length <= TAIL_BYTES) this.tail = Buffer.concat([this.tail, chunk]);
    else this.tail = Buffer.concat([this.tail.subarray(this.tail.length + chunk.length - TAIL_BYTES), chunk]);
    if (!this.log.isLevelEnabled('debug') && !this.onLine?.wants()) return;
    const text = this.partial + this.decoder.write(chunk);
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      this.emit(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    // a line that never ends must not grow without bound: log what we have and go on
    this.partial = text.length - start > LOG_LINE_CHARS ? (this.emit(text.slice(start)), '') : text.slice(start);
  }

  end(): void {
    if (this.partial) this.emit(this.partial);
    this.partial = '';
  }

  /** The last `count` non-empty lines, each shortened, for an error message. */
  lastLines(count = 5): string[] {
    if (this.tail.length === 0) return [];
    const lines = this.tail
      .toString('utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '');
    return lines.slice(-count).map((l) => truncate(this.redact(l), ERROR_LINE_CHARS));
  }

  private emit(line: string): void {
    const text = this.redact(line.endsWith('\r') ? line.slice(0, -1) : line);
    if (text === '') return;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ stderr: truncate(text, LOG_LINE_CHARS) }, 'server stderr');
    else if (this.onLine?.wants()) this.onLine.line(truncate(text, LOG_LINE_CHARS));
  }
}

const SECRET_NAME = /SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE|CREDENTIAL/i;

/**
 * What a server's stderr must not carry into the gateway's log: every value of the caller's identity
 * environment (a token, a key), and values of other variables the server gets whose names say they are
 * secret. A server that prints its environment (or a stack trace with it) is then logged without them.
 */
export function secretValues(identityEnv: Readonly<Record<string, string>>, ...others: Readonly<Record<string, string | undefined>>[]): string[] {
  const values = new Set<string>(Object.values(identityEnv).filter((v) => v.length >= 4));
  for (const env of others) for (const [name, value] of Object.entries(env)) if (value && value.length >= 8 && SECRET_NAME.test(name)) values.add(value);
  // longest first, so a secret that holds another is replaced whole
  return [...values].sort((a, b) => b.length - a.length);
}
