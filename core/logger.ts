import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger };

/** Paths that may carry credentials. Tokens are never logged on purpose; this is the safety net. */
export const REDACT_PATHS = [
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'req.headers.authorization', 'req.headers.cookie', 'headers.cookie',
  'token', '*.token', 'access_token', '*.access_token', 'refresh_token', '*.refresh_token', 'id_token', '*.id_token',
  'code', '*.code', 'verifier', '*.verifier', 'code_verifier', '*.code_verifier',
  'secret', '*.secret', 'client_secret', '*.client_secret', 'password', '*.password',
  'env', '*.env', 'token_data', '*.token_data',
];

export interface LoggerSettings {
  level?: string;
  /** where log lines go; stderr by default so stdout stays for the CLI's own lines */
  destination?: DestinationStream;
  /** also gets every line written (after redaction); must be quick and never throw */
  tap?: (line: string) => void;
}

/** Writes to `destination` and hands each line to `tap`, keeping the destination's flush. */
function tee(destination: DestinationStream, tap: (line: string) => void): DestinationStream {
  const target = destination as DestinationStream & { flush?(cb?: (err?: Error) => void): void; flushSync?(): void; end?(): void };
  return {
    write(line: string) {
      target.write(line);
      tap(line);
    },
    ...(target.flush ? { flush: (cb?: (err?: Error) => void) => target.flush!(cb) } : {}),
    ...(target.flushSync ? { flushSync: () => target.flushSync!() } : {}),
    ...(target.end ? { end: () => target.end!() } : {}),
  } as DestinationStream;
}

/** Log bytes held for a stderr that does not keep up; lines past it are dropped, never waited for. */
const STDERR_BACKLOG = 4 * 1024 * 1024;

/**
 * Log lines to `process.stderr`, which never holds the process: on a pipe or socket Node writes
 * without blocking, a reader that does not keep up costs at most STDERR_BACKLOG bytes (later lines are
 * dropped), and a reader that went away (EPIPE) ends logging. pino's own `pino.destination()` flushes
 * synchronously at exit and retries a closed stderr forever (sonic-boom sleeps in Atomics.wait), so a
 * parent that closed its end (`spawnSync` with a timeout) would wait for a process that never exits.
 */
export function stderrDestination(stream: NodeJS.WriteStream = process.stderr): DestinationStream {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return {
    write(line: string): void {
      if (broken || stream.writableLength > STDERR_BACKLOG) return;
      stream.write(line);
    },
  };
}

let shared: DestinationStream | undefined;

export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? process.env.FMCP_LOG_LEVEL ?? 'info',
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const destination = settings.destination ?? (shared ??= stderrDestination());
  return pino(options, settings.tap ? tee(destination, settings.tap) : destination);
}

/** Waits until what was written to stderr left the process, or `ms` passed: call it before process.exit. */
export function drainStderr(ms = 1000, stream: NodeJS.WriteStream = process.stderr): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stream.once('drain', done);
    stream.once('error', done);
  });
}
