import type { JsonObject } from '../../core/index.js';
import { isObject } from './jsonrpc.js';
import type { CallSink, SessionLike } from './call-sink.js';

/**
 * Which client may receive what a server sends unprompted (server-to-client requests, logging and other
 * notifications). stdio carries no link from such a message to the call that caused it, so the gateway
 * only delivers one when exactly one client can have caused it; everything else is refused or dropped.
 * Sessions that declare sampling, elicitation or roots get a process of their own (`needsOwnProcess`),
 * which makes their server requests provable; this module is the one place that decides.
 */

/** The client capability each server-to-client request needs. */
const CAPABILITY_OF: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** Client capabilities that let a server send requests to the client. */
export const SERVER_REQUEST_CAPABILITIES = ['sampling', 'elicitation', 'roots'] as const;

/** True when a client declaring these capabilities may receive server requests: it gets a process of its own. */
export function needsOwnProcess(capabilities: JsonObject): boolean {
  return SERVER_REQUEST_CAPABILITIES.some((c) => capabilities[c] !== undefined);
}

/** The capabilities the gateway declares to a server on behalf of the one session a process serves. */
export function capabilitiesFor(capabilities: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const c of SERVER_REQUEST_CAPABILITIES) if (isObject(capabilities[c])) out[c] = capabilities[c];
  return out;
}

/** What an instance knows when a message arrives from its server. */
export interface RoutingScope {
  /** the calls in flight, oldest first */
  readonly calls: Iterable<CallSink>;
  /** the sessions bound to the instance */
  readonly sessions: () => Iterable<SessionLike>;
}

/** The one client that can have caused a message, or why none can be named. */
export type Cause =
  | { readonly session: SessionLike; readonly calls: readonly CallSink[] }
  | { readonly session?: undefined; readonly why: string };

/**
 * Who caused a message: the only session with calls in flight, or, with nothing in flight, the only
 * session bound to the instance. A call without a session in flight, or several sessions, leave it unknown.
 */
export function causeOf(scope: RoutingScope): Cause {
  let session: SessionLike | undefined;
  const calls: CallSink[] = [];
  let any = false;
  for (const call of scope.calls) {
    any = true;
    // a call without a session (a bare POST, a 2026 stateless request) can cause it but cannot be named
    if (!call.session) return { why: 'a call without a session is in flight on this process' };
    if (session && call.session !== session) return { why: 'calls of several sessions are in flight on this process' };
    session = call.session;
    calls.push(call);
  }
  if (session) return { session, calls };
  if (any) return { why: 'no session has a call in flight' };
  let only: SessionLike | undefined;
  for (const s of scope.sessions()) {
    if (only) return { why: 'several sessions share this process and none has a call in flight' };
    only = s;
  }
  return only ? { session: only, calls: [] } : { why: 'no client session is connected to this process' };
}

/** Where a server-to-client request goes, or why it is refused. */
export type ServerRequestRoute =
  | { readonly session: SessionLike; readonly calls: readonly CallSink[] }
  | { readonly session?: undefined; readonly refusal: string };

/**
 * Routes a server-to-client request: to the session that provably caused it, and only when that session
 * declared the capability the method needs. A refusal is answered to the server at once.
 */
export function routeServerRequest(request: JsonObject, scope: RoutingScope): ServerRequestRoute {
  const method = String(request.method);
  const cause = causeOf(scope);
  if (!cause.session) return { refusal: `No client may receive ${method}: ${cause.why}` };
  const needed = CAPABILITY_OF[method];
  if (needed !== undefined && cause.session.capabilities[needed] === undefined) {
    return { refusal: `No client may receive ${method}: the client session that caused it did not declare the "${needed}" capability` };
  }
  return cause;
}

/** Where one server notification goes: a call's own stream, or a session's stream. */
export type NotificationTarget = { readonly call: CallSink; readonly session?: undefined } | { readonly session: SessionLike; readonly call?: undefined };

const LIST_CHANGED = new Set(['notifications/tools/list_changed', 'notifications/prompts/list_changed', 'notifications/resources/list_changed']);

/** List changes and resource updates: what every interested client hears, whoever caused it. */
export function isBroadcast(method: string): boolean {
  return LIST_CHANGED.has(method) || method === 'notifications/resources/updated';
}

/** RFC 5424 severities, as MCP's logging/setLevel names them, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;

/** True when a session that asked for `wanted` (or nothing) should see a log message of `level`. */
export function wantsLog(wanted: string | undefined, level: unknown): boolean {
  if (wanted === undefined) return true;
  const at = LOG_LEVELS.indexOf(level as (typeof LOG_LEVELS)[number]);
  return at === -1 || at >= LOG_LEVELS.indexOf(wanted as (typeof LOG_LEVELS)[number]);
}

/**
 * Routes a server notification other than progress: list changes to every session of the process,
 * resource updates to the sessions subscribed to that resource, log messages and anything else to the
 * only session with calls in flight (log messages by its level). With nothing in flight a message is the
 * server's own: it goes to every session of the process (log messages to those that set a level). With
 * calls of several clients in flight nobody provably caused it, and it is dropped.
 */
export function routeServerNotification(message: JsonObject, scope: RoutingScope): NotificationTarget[] {
  const method = String(message.method);
  const params = isObject(message.params) ? message.params : {};
  if (LIST_CHANGED.has(method)) return [...scope.sessions()].map((session) => ({ session }));
  if (method === 'notifications/resources/updated') {
    return [...scope.sessions()].filter((s) => typeof params.uri === 'string' && s.subscriptions.has(params.uri)).map((session) => ({ session }));
  }
  const isLog = method === 'notifications/message';
  const cause = causeOf(scope);
  const call = cause.session ? cause.calls[0] : undefined;
  if (call) return isLog && !wantsLog(cause.session!.logLevel, params.level) ? [] : [{ call }];
  // a single call without a session (a 2026-07-28 request) is provably the cause: its sink filters by its own log level
  const inFlight = [...scope.calls];
  if (inFlight.length === 1 && !inFlight[0]!.session) return [{ call: inFlight[0]! }];
  if (!scope.calls[Symbol.iterator]().next().done) return []; // several clients may have caused it: nobody gets it
  return [...scope.sessions()].filter((s) => !isLog || (s.logLevel !== undefined && wantsLog(s.logLevel, params.level))).map((session) => ({ session }));
}
