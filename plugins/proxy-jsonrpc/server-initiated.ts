import type { JsonObject, Logger } from '../../core/index.js';
import { errorResponse, INTERNAL_ERROR, isObject, METHOD_NOT_FOUND } from './jsonrpc.js';
import type { CallSink, SessionLike } from './call-sink.js';
import { routeServerNotification, isBroadcast, routeServerRequest, type RoutingScope } from './server-requests.js';

/** A call in flight as the routing of server-initiated messages sees it. */
export interface CallInFlight {
  readonly sink: CallSink;
  /** the client's progress token, restored on the way out */
  readonly progressToken: unknown;
}

export interface InitiatedOptions {
  readonly name: string;
  readonly log: Logger;
  /** the instance's calls in flight by its own id, in send order */
  readonly pending: ReadonlyMap<number, CallInFlight>;
  /** the client sessions the instance serves, most recently seen first */
  readonly sessions: () => Iterable<SessionLike>;
  /** also told every list change and resource update (2026-07-28 `subscriptions/listen` streams) */
  readonly broadcast?: (message: JsonObject) => void;
  /** sends a message to the server, dropping it when the server is not up */
  readonly send: (message: JsonObject) => void;
}

interface ServerRequest {
  readonly serverId: unknown;
  readonly session: SessionLike;
  readonly method: string;
}

/**
 * What a server sends on its own, for one ServerInstance: its requests to the client (sampling,
 * elicitation, roots; `fmcp-N` ids toward the client, the server's own restored on the answer) and its
 * notifications, each routed to the call or session that caused it (server-requests.ts).
 */
export class ServerInitiated {
  private readonly requests = new Map<string, ServerRequest>();
  private next = 1;

  constructor(private readonly options: InitiatedOptions) {}

  /** What the routing of server-initiated messages needs to know about the instance. */
  private get scope(): RoutingScope {
    const pending = this.options.pending;
    return { calls: { *[Symbol.iterator]() { for (const call of pending.values()) yield call.sink; } }, sessions: this.options.sessions };
  }

  notification(message: JsonObject): void {
    const method = message.method as string;
    if (method === 'notifications/progress') {
      const params = message.params;
      const token = isObject(params) ? params.progressToken : undefined;
      const call = typeof token === 'number' ? this.options.pending.get(token) : undefined;
      if (!call || !isObject(params)) return;
      params.progressToken = call.progressToken;
      call.sink.notification(message);
      return;
    }
    if (method === 'notifications/cancelled') {
      // the server gave up on one of its own requests
      const params = message.params;
      if (isObject(params)) {
        for (const [gatewayId, req] of this.requests) {
          if (req.serverId === params.requestId) {
            this.requests.delete(gatewayId);
            req.session.serverRequests.delete(gatewayId);
            req.session.push({ ...message, params: { ...params, requestId: gatewayId } });
          }
        }
      }
      return;
    }
    if (isBroadcast(method)) this.options.broadcast?.(message);
    for (const target of routeServerNotification(message, this.scope)) {
      if (target.call) target.call.notification(message);
      else target.session.push(message);
    }
  }

  request(message: JsonObject): void {
    if (message.method === 'ping') {
      this.options.send({ jsonrpc: '2.0', id: message.id, result: {} });
      return;
    }
    const serverId = message.id;
    if (this.bridge(message, serverId)) return;
    const gatewayId = `fmcp-${this.next++}`;
    const routed: JsonObject = { ...message, id: gatewayId };
    const route = routeServerRequest(message, this.scope);
    if (!route.session) {
      this.options.log.info({ server: this.options.name, method: message.method }, route.refusal);
      this.options.send(errorResponse(serverId, METHOD_NOT_FOUND, route.refusal));
      return;
    }
    const session = route.session;
    this.requests.set(gatewayId, { serverId, session, method: String(message.method) });
    session.serverRequests.add(gatewayId);
    // on the stream of a call of that session, else on the session's own stream
    for (const call of route.calls) if (call.request(routed)) return;
    if (session.push(routed)) return;
    this.requests.delete(gatewayId);
    session.serverRequests.delete(gatewayId);
    this.options.send(errorResponse(serverId, METHOD_NOT_FOUND, `The client session that caused ${String(message.method)} has no open stream to receive it`));
  }

  /**
   * Hook point: the oldest call that could carry a server request takes it itself when its sink can; a
   * call whose client could not answer it is passed over, and refuses it only when no other call could.
   */
  private bridge(message: JsonObject, serverId: unknown): boolean {
    const answer = (response: JsonObject) => this.options.send({ ...response, jsonrpc: '2.0', id: serverId });
    let refuser: CallSink | undefined;
    for (const call of this.options.pending.values()) {
      const sink = call.sink;
      if (sink.takeServerRequest) {
        if (sink.canAnswer?.(message) ?? true) return sink.takeServerRequest(message, answer);
        refuser ??= sink;
        continue;
      }
      if (sink.session) return false;
    }
    return refuser ? refuser.takeServerRequest!(message, answer) : false;
  }

  /** A client's answer to a server request: restores the server's id. False when the request is unknown. */
  answer(gatewayId: unknown, message: JsonObject, session: SessionLike): boolean {
    if (typeof gatewayId !== 'string') return false;
    const req = this.requests.get(gatewayId);
    if (!req || req.session !== session) return false;
    this.requests.delete(gatewayId);
    session.serverRequests.delete(gatewayId);
    message.id = req.serverId;
    this.options.send(message);
    return true;
  }

  /** A session ended: answer the server requests it still held. */
  dropSession(session: SessionLike): void {
    for (const gatewayId of session.serverRequests) {
      const req = this.requests.get(gatewayId);
      if (!req) continue;
      this.requests.delete(gatewayId);
      this.options.send(errorResponse(req.serverId, INTERNAL_ERROR, 'The client session ended before it answered'));
    }
    session.serverRequests.clear();
  }

  /**
   * Why a call of `session` got no answer within `ms` (computed only at the timeout): the server waiting for
   * that client's answer to one of its requests, when the session holds one unanswered, else the server's silence.
   */
  timedOut(session: SessionLike | undefined, ms: number): string {
    const name = this.options.name;
    if (session) {
      for (const gatewayId of session.serverRequests) {
        const req = this.requests.get(gatewayId);
        if (req) return `Server "${name}" was waiting for this client's answer to its ${req.method} request and none came within ${ms} ms; the call was cancelled: answer server requests on the session's stream`;
      }
    }
    return `Server "${name}" did not answer within ${ms} ms; the call was cancelled`;
  }

  /** The server went down: its requests died with it. */
  clear(): void {
    this.requests.clear();
  }
}
