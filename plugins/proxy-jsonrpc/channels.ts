import { errors, type ChannelBroker, type ClientChannel, type Identity, type JsonObject } from '../../core/index.js';
import type { Dispatcher } from './dispatcher.js';
import { errorResponse, idOf, initializeProblem, INVALID_PARAMS, INVALID_REQUEST, kindOf, messageProblem, REQUEST_CANCELLED, SERVER_UNAVAILABLE } from './jsonrpc.js';
import type { CallSink } from './call-sink.js';
import { clientAddress } from './session-limits.js';
import type { Session } from './sessions.js';

/** A call whose messages all go to one function (a channel session, or a single call's callbacks). */
class FunctionSink implements CallSink {
  constructor(
    readonly session: Session | undefined,
    private readonly onResponse: (m: JsonObject) => void,
    private readonly onOther: ((m: JsonObject) => void) | undefined,
    private readonly onCancelled?: (clientId: unknown, reason: string) => void,
  ) {}
  cancelled(clientId: unknown, reason: string): void {
    this.onCancelled?.(clientId, reason);
  }
  response(message: JsonObject): void {
    this.onResponse(message);
  }
  notification(message: JsonObject): void {
    if (this.onOther) this.onOther(message);
    else this.session?.push(message);
  }
  request(message: JsonObject): boolean {
    if (this.onOther) {
      this.onOther(message);
      return true;
    }
    return this.session?.push(message) ?? false;
  }
}

/** The CHANNELS token: lets other plugins (the SSE transports) talk to servers as clients do. */
export class Channels implements ChannelBroker {
  constructor(private readonly dispatcher: Dispatcher) {}

  async open(serverName: string, opener: Identity, onMessage: (message: JsonObject) => void, onClose?: () => void, address?: string): Promise<ClientChannel> {
    const server = this.dispatcher.server(serverName);
    const dispatcher = this.dispatcher;
    let session: Session | undefined;
    let closed = false;
    let identity = opener;
    const where = `/${server.name}/sse`;
    // a client's channel holds a place among the sessions from now on: refused here at the limit, before any stream opens
    const seat = address === undefined ? undefined : dispatcher.sessions.reserve(clientAddress(address), where, () => channel.close());
    const channel: ClientChannel = {
      get id() {
        return session?.id ?? 'uninitialized';
      },
      send(message: JsonObject, current?: Identity): void {
        if (closed) return;
        if (current) identity = current;
        const kind = kindOf(message);
        if (kind === 'invalid') {
          const problem = messageProblem(message);
          onMessage(errorResponse(idOf(message), problem.code, problem.message));
          return;
        }
        if (kind === 'request' && message.method === 'initialize') {
          const problem = initializeProblem(message);
          if (problem !== undefined) {
            onMessage(errorResponse(message.id, INVALID_PARAMS, problem));
            return;
          }
          dispatcher.initialize(server, identity, message, (m) => onMessage(m), clientAddress(address), seat).then(
            (opened) => {
              if (closed) {
                dispatcher.endSession(opened.session);
                return;
              }
              // initialize again on the same channel: the new session replaces the old one
              const replaced = session;
              session = opened.session;
              if (replaced) dispatcher.endSession(replaced);
              // the session ended under the channel (an operator stopped its process): the channel closes with it
              opened.session.onEnd = () => {
                if (session === opened.session) channel.close();
              };
              onMessage(opened.response);
            },
            (err: Error) => onMessage(errorResponse(message.id, SERVER_UNAVAILABLE, err.message)),
          );
          return;
        }
        if (kind === 'request' && !session && seat && message.method !== 'ping') {
          // a client's stream is a session: nothing is served on it before initialize (no silent session-less calls)
          onMessage(errorResponse(message.id, INVALID_REQUEST, `Invalid Request: this ${where} stream has no session yet: send initialize first (a session ends with its stream, or when an operator stops the server process that served it; then open GET ${where} again)`));
          return;
        }
        if (kind === 'notification') dispatcher.notification(server, identity, session, message);
        else if (kind === 'response') dispatcher.response(session, message);
        else dispatcher.request(server, identity, session, message, new FunctionSink(session, onMessage, session ? undefined : onMessage));
      },
      close(): void {
        if (closed) return;
        closed = true;
        if (seat) dispatcher.sessions.release(seat);
        if (session) dispatcher.endSession(session);
        onClose?.();
      },
    };
    return channel;
  }

  call(serverName: string, identity: Identity, request: JsonObject, onNotification?: (message: JsonObject) => void, signal?: AbortSignal): Promise<JsonObject> {
    const server = this.dispatcher.server(serverName);
    const kind = kindOf(request);
    if (kind === 'invalid') {
      const problem = messageProblem(request);
      return Promise.resolve(errorResponse(idOf(request), problem.code, problem.message));
    }
    if (kind !== 'request') return Promise.reject(errors.FMCP_ERR_BAD_REQUEST('Invalid Request: expected a JSON-RPC 2.0 request with "method" and "id"'));
    return new Promise((resolve) => {
      let done = false;
      const sink = new FunctionSink(
        undefined,
        (m) => {
          done = true;
          resolve(m);
        },
        (m) => onNotification?.(m),
        (clientId, reason) => {
          if (done) return;
          done = true;
          resolve(errorResponse(clientId, REQUEST_CANCELLED, `Request cancelled: ${reason}`));
        },
      );
      const cancel = this.dispatcher.request(server, identity, undefined, request, sink);
      signal?.addEventListener('abort', () => {
        if (!done) {
          done = true;
          cancel('client disconnected');
          resolve(errorResponse(request.id, INVALID_REQUEST, 'cancelled'));
        }
      }, { once: true });
    });
  }
}
