/**
 * The proxy's defaults, in one place: the plugin reads them, README.md and docs/deploy.md state them, and
 * test/plugins/proxy-jsonrpc/defaults.test.ts holds the two together.
 */
export const PROXY_DEFAULTS = {
  /** a call the server does not answer ends in a JSON-RPC error after this long */
  callTimeoutMs: 60_000,
  /** most processes per server for distinct tokens or sessions */
  maxInstances: 32,
  /** a token's or session's process stops after this long without calls */
  instanceIdleMs: 10 * 60_000,
  /** at maxInstances, a process without calls in flight or open streams idle this long may be stopped for a new one */
  instanceEvictIdleMs: 60_000,
  /** most Streamable HTTP and legacy SSE sessions at once (session-limits.ts) */
  maxSessions: 10_000,
  /** most sessions from one client address; 0: no limit (behind a reverse proxy every client has its address) */
  maxSessionsPerAddress: 0,
  /** at a session limit, a session without an open stream idle this long may be ended to make room */
  sessionEvictIdleMs: 5 * 60_000,
} as const;
