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

export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? process.env.FMCP_LOG_LEVEL ?? 'info',
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const destination = settings.destination ?? pino.destination({ fd: 2, sync: false });
  return pino(options, settings.tap ? tee(destination, settings.tap) : destination);
}
