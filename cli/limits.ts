import type { Argv } from 'yargs';
import { UsageError } from './output.js';

/** The proxy's limits `fluidmcp run` takes: the flag, its environment variable, and the smallest value. */
const LIMITS = [
  { option: 'maxSessions', flag: 'max-sessions', env: 'FMCP_MAX_SESSIONS', min: 1, describe: 'most client sessions at once (default 10000)' },
  { option: 'maxSessionsPerAddress', flag: 'max-sessions-per-address', env: 'FMCP_MAX_SESSIONS_PER_ADDRESS', min: 0, describe: 'most sessions from one client address (default 0: no limit)' },
  { option: 'maxInstances', flag: 'max-instances', env: 'FMCP_MAX_INSTANCES', min: 1, describe: 'most processes per server for tokens or sessions of their own (default 32)' },
  { option: 'instanceEvictIdleMs', flag: 'instance-evict-idle-ms', env: 'FMCP_INSTANCE_EVICT_IDLE_MS', min: 1, describe: 'at --max-instances, a process idle this long may make room for a new one, ms (default 60000)' },
  { option: 'callTimeoutMs', flag: 'call-timeout-ms', env: 'FMCP_CALL_TIMEOUT_MS', min: 1, describe: 'a call the server does not answer ends in an error after this long, ms (default 60000)' },
] as const;

export type ProxyLimits = { -readonly [K in (typeof LIMITS)[number]['option']]?: number };

/** What was given for each limit, flag first, else its environment variable: text and where it came from. */
export type GivenLimits = Partial<Record<keyof ProxyLimits, { text: string; from: string }>>;

export function limitOptions<T>(y: Argv<T>): Argv<T> {
  for (const limit of LIMITS) y = y.option(limit.flag, { type: 'string', describe: `${limit.describe}; or ${limit.env}` });
  return y;
}

/** Reads the limits from parsed arguments (the last of a repeated flag) and the environment. */
export function givenLimits(argv: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): GivenLimits {
  const given: GivenLimits = {};
  for (const limit of LIMITS) {
    const raw = argv[limit.flag];
    if (raw !== undefined) given[limit.option] = { text: String(Array.isArray(raw) ? raw.at(-1) : raw), from: `--${limit.flag}` };
    else if (env[limit.env]) given[limit.option] = { text: env[limit.env]!, from: limit.env };
  }
  return given;
}

/** The limits as numbers; a usage error naming the flag (or variable) for a value that is not a whole number in range. */
export function parseLimits(given: GivenLimits): ProxyLimits {
  const limits: ProxyLimits = {};
  for (const limit of LIMITS) {
    const value = given[limit.option];
    if (value === undefined) continue;
    const n = Number(value.text);
    if (!/^\d+$/.test(value.text.trim()) || !Number.isSafeInteger(n) || n < limit.min) {
      throw new UsageError(`${value.from} must be a whole number of ${limit.min} or more, got "${value.text}"`);
    }
    limits[limit.option] = n;
  }
  return limits;
}
