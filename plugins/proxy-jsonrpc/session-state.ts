import type { JsonObject } from '../../core/index.js';
import { isObject } from './jsonrpc.js';
import { LOG_LEVELS } from './server-requests.js';
import type { CallSink, SessionLike } from './call-sink.js';
import type { ServerInstance } from './server-instance.js';

/** A sink for the gateway's own calls: their answers matter to nobody. */
const DISCARD: CallSink = { session: undefined, response: () => undefined, notification: () => undefined, request: () => false };

const answer = (sink: CallSink, id: unknown): void => sink.response({ jsonrpc: '2.0', id, result: {} });

/*
 * State a server keeps for all its clients at once (`logging/setLevel`, `resources/subscribe`), kept per
 * session by the gateway: the server gets the union of what the sessions of its process asked for, each
 * session gets only what it asked for (see routeServerNotification), and one session's unsubscribe never
 * ends another's.
 */

/**
 * Looks at a client request that changes such state: answers it at once when the server already has what
 * it asks for (returns true), or rewrites it to the union for the server (returns false: send it).
 */
export function interceptSessionState(instance: ServerInstance, session: SessionLike, sessions: () => readonly SessionLike[], message: JsonObject, sink: CallSink): boolean {
  const method = message.method;
  // every call passes here: the sessions of the process are listed only for the three methods that need them
  if (method !== 'logging/setLevel' && method !== 'resources/subscribe' && method !== 'resources/unsubscribe') return false;
  const params = isObject(message.params) ? message.params : {};
  const others = sessions().filter((s) => s !== session);
  switch (method) {
    case 'logging/setLevel': {
      const level = params.level;
      if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) return false;
      session.logLevel = level;
      const union = mostVerbose([session, ...others]);
      if (union === instance.logLevel) {
        answer(sink, message.id);
        return true;
      }
      instance.logLevel = union;
      message.params = { ...params, level: union };
      return false;
    }
    case 'resources/subscribe':
    case 'resources/unsubscribe': {
      const uri = params.uri;
      if (typeof uri !== 'string') return false;
      if (message.method === 'resources/subscribe') session.subscriptions.add(uri);
      else session.subscriptions.delete(uri);
      if (!others.some((s) => s.subscriptions.has(uri))) return false;
      answer(sink, message.id);
      return true;
    }
    default:
      return false;
  }
}

/** A session left the process: end the subscriptions only it held, and lower the log level it alone raised. */
export function releaseSessionState(instance: ServerInstance, session: SessionLike, remaining: readonly SessionLike[]): void {
  if (instance.state !== 'ready') return;
  let next = 1;
  const own = () => `fmcp-state-${next++}`;
  for (const uri of session.subscriptions) {
    if (remaining.some((s) => s.subscriptions.has(uri))) continue;
    instance.call({ jsonrpc: '2.0', id: own(), method: 'resources/unsubscribe', params: { uri } }, DISCARD);
  }
  session.subscriptions.clear();
  const union = mostVerbose(remaining);
  if (union !== undefined && union !== instance.logLevel) {
    instance.logLevel = union;
    instance.call({ jsonrpc: '2.0', id: own(), method: 'logging/setLevel', params: { level: union } }, DISCARD);
  }
}

/** A restarted server forgot what its sessions asked for: ask it again, before any queued call. */
export function restoreSessionState(instance: ServerInstance, sessions: readonly SessionLike[]): void {
  let next = 1;
  const own = () => `fmcp-restore-${next++}`;
  const level = mostVerbose(sessions);
  if (level !== undefined) {
    instance.logLevel = level;
    instance.call({ jsonrpc: '2.0', id: own(), method: 'logging/setLevel', params: { level } }, DISCARD);
  }
  const uris = new Set<string>();
  for (const s of sessions) for (const uri of s.subscriptions) uris.add(uri);
  for (const uri of uris) instance.call({ jsonrpc: '2.0', id: own(), method: 'resources/subscribe', params: { uri } }, DISCARD);
}

function mostVerbose(sessions: readonly SessionLike[]): string | undefined {
  let best = -1;
  for (const s of sessions) {
    const at = s.logLevel === undefined ? -1 : LOG_LEVELS.indexOf(s.logLevel as (typeof LOG_LEVELS)[number]);
    if (at !== -1 && (best === -1 || at < best)) best = at;
  }
  return best === -1 ? undefined : LOG_LEVELS[best];
}
