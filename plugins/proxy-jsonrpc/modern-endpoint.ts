import {
  principalOf,
  sendJson,
  type EventStream,
  type EventStreamFactory,
  type JsonObject,
  type RequestContext,
  type ServerDefinition,
} from '../../core/index.js';
import { withTimeout, type Dispatcher } from './dispatcher.js';
import { InstancePool } from './instance-pool.js';
import { answerNestedTooDeeply, errorResponse, idOf, INVALID_REQUEST, isNestedTooDeeply, isObject, kindOf, messageProblem, METHOD_NOT_FOUND, SERVER_UNAVAILABLE } from './jsonrpc.js';
import {
  ALL_VERSIONS,
  decorateResult,
  isRejection,
  REMOVED_METHODS,
  toLegacyRequest,
  validateModernRequest,
  type ResultDecoration,
} from './modern-era.js';
import { ExclusiveCalls } from './exclusive-calls.js';
import { ModernCall, paramsDigest, type MrtrBridge, type ModernTarget } from './mrtr-bridge.js';
import type { RetryForwarder } from './replica-forward.js';
import type { Subscriptions } from './subscriptions.js';

export interface ModernOptions {
  /** `ttlMs` on cacheable results of servers without auth (servers with auth: 0 and "private") */
  readonly cacheTtlMs: number;
  readonly handshakeTimeoutMs: number;
}

/** One HTTP request of a modern call: JSON, or an SSE stream once something comes before the answer. */
class HttpTarget implements ModernTarget {
  private stream: EventStream | undefined;
  done = false;

  constructor(
    private readonly ctx: RequestContext,
    private readonly sse: boolean,
    /** the client accepts a plain JSON answer (else the answer goes on an event stream) */
    private readonly json: boolean,
    private readonly streams: EventStreamFactory | undefined,
    readonly clientId: unknown,
    readonly progressToken: unknown,
    readonly meta: JsonObject,
    readonly capabilities: JsonObject,
  ) {}

  notify(message: JsonObject): void {
    if (this.done || !this.openStream()) return;
    this.stream!.send(JSON.stringify(message), 'message');
  }

  private openStream(): boolean {
    if (this.stream) return true;
    if (!this.sse || !this.streams || this.ctx.res.headersSent) return false;
    this.stream = this.streams.open(this.ctx.res);
    return true;
  }

  refuse(message: JsonObject, status: number, headers: Record<string, string>): void {
    if (this.stream || this.ctx.res.headersSent) {
      this.finish(message);
      return;
    }
    if (this.done) return;
    this.done = true;
    sendJson(this.ctx.res, status, message, headers);
  }

  finish(message: JsonObject): void {
    if (this.done) return;
    this.done = true;
    try {
      if (this.stream || (!this.json && this.openStream())) {
        this.stream!.send(JSON.stringify(message), 'message');
        this.stream!.close();
        return;
      }
      // spec: a method the server does not implement is 404 with the JSON-RPC error
      const notFound = isObject(message.error) && message.error.code === METHOD_NOT_FOUND;
      sendJson(this.ctx.res, notFound ? 404 : 200, message);
    } catch (err) {
      // serializing threw before anything was written: the client still gets an answer
      if (!isNestedTooDeeply(err)) throw err;
      this.done = false;
      this.finish(answerNestedTooDeeply(message));
    }
  }
}

/**
 * Serves 2026-07-28 requests on `/{name}/mcp`: no session, every request on its own, to the same
 * process the legacy clients of the caller use (a request that may cause server requests runs alone on a
 * process of its own: `exclusive-calls.ts`). Legacy servers are bridged: results get `resultType`,
 * serverInfo and caching hints; their requests to the client become MRTR rounds (`mrtr-bridge.ts`).
 */
export class ModernEndpoint {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly streams: () => EventStreamFactory | undefined,
    private readonly bridge: MrtrBridge,
    private readonly subscriptions: Subscriptions,
    private readonly options: ModernOptions,
    /** the processes that serve requests which may cause server requests (exclusive-calls.ts) */
    private readonly exclusive: ExclusiveCalls,
    /** sends a retry whose call another replica holds to that replica (replica-forward.ts) */
    private readonly forwarder?: RetryForwarder,
  ) {}

  async handle(ctx: RequestContext, server: ServerDefinition, message: JsonObject, accept: { json: boolean; sse: boolean }): Promise<void> {
    const { res } = ctx;
    const kind = kindOf(message);
    if (kind === 'notification') {
      // this revision defines no client notifications over HTTP (closing a stream is the cancellation)
      res.writeHead(202).end();
      return;
    }
    if (kind === 'invalid') {
      const problem = messageProblem(message);
      sendJson(res, 400, errorResponse(idOf(message), problem.code, problem.message));
      return;
    }
    if (kind !== 'request') {
      sendJson(res, 400, errorResponse(null, INVALID_REQUEST, 'Invalid Request: a 2026-07-28 POST carries one JSON-RPC request or notification, never a response'));
      return;
    }
    const checked = validateModernRequest(message, ctx.req.headers);
    if (isRejection(checked)) {
      sendJson(res, checked.status, checked.body);
      return;
    }
    const method = String(message.method);
    if (REMOVED_METHODS.has(method)) {
      sendJson(res, 404, errorResponse(message.id, METHOD_NOT_FOUND, `Method not found: ${method} does not exist in protocol 2026-07-28${method === 'initialize' ? ' (send requests directly, or server/discover)' : ''}`));
      return;
    }
    const params = isObject(message.params) ? message.params : {};
    const target = new HttpTarget(ctx, accept.sse, accept.json, this.streams(), message.id, checked.meta.progressToken, checked.meta, checked.capabilities);

    if (method === 'server/discover') {
      await this.discover(ctx, server, target);
      return;
    }
    if (method === 'subscriptions/listen') {
      await this.subscriptions.listen(ctx, server, message, this.decoration(server, ctx));
      return;
    }

    const name = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : '';
    const principal = principalOf(ctx.identity);
    if (params.requestState !== undefined) {
      // a call another replica holds is continued there
      const holder = this.bridge.holderOf(params.requestState);
      if (holder !== undefined && this.forwarder) {
        await this.forwarder.forward(ctx, server.name, holder, message.id);
        return;
      }
      const call = this.bridge.resume(params.requestState, principal, server.name, method, name, params);
      if (!(call instanceof ModernCall)) {
        sendJson(res, 200, errorResponse(message.id, call.code, call.message));
        return;
      }
      this.watchClose(ctx, call, target);
      call.resume(target, params.inputResponses);
      return;
    }
    // the digest is made from the body as received (nothing on the way can have changed it), and only if the call waits for input
    const body = ctx.body;
    const digestOf = body ? () => paramsDigest(paramsOf(JSON.parse(body.toString('utf8')))) : () => paramsDigest(params);
    const call = new ModernCall(this.bridge, principal, server.name, method, name, digestOf, () => this.decoration(server, ctx), target);
    call.cancelUpstream = ExclusiveCalls.needed(checked.capabilities)
      ? this.exclusive.request(server, ctx.identity, toLegacyRequest(message), call)
      : this.dispatcher.request(server, ctx.identity, undefined, toLegacyRequest(message), call);
    this.watchClose(ctx, call, target);
  }

  private watchClose(ctx: RequestContext, call: ModernCall, target: HttpTarget): void {
    if (target.done) return;
    ctx.res.once('close', () => {
      if (!target.done) {
        target.done = true;
        call.detachClosed(target);
      }
    });
  }

  private async discover(ctx: RequestContext, server: ServerDefinition, target: HttpTarget): Promise<void> {
    let init: JsonObject | undefined;
    try {
      const instance = this.dispatcher.instanceFor(server, ctx.identity);
      await withTimeout(instance.whenReady(), this.options.handshakeTimeoutMs, `Server "${server.name}" did not become ready`);
      init = instance.initResult;
    } catch (err) {
      target.finish(errorResponse(target.clientId, SERVER_UNAVAILABLE, (err as Error).message));
      return;
    }
    const result: JsonObject = {
      supportedVersions: [...ALL_VERSIONS],
      capabilities: modernCapabilities(init?.capabilities),
    };
    if (typeof init?.instructions === 'string') result.instructions = init.instructions;
    target.finish(decorateResult('server/discover', { jsonrpc: '2.0', id: target.clientId, result }, this.decoration(server, ctx)));
  }

  /** resultType, serverInfo and caching hints for this server's results. */
  decoration(server: ServerDefinition, ctx: RequestContext): ResultDecoration {
    const instance = this.dispatcher.pool.peek(InstancePool.keyOf(server, ctx.identity));
    const serverInfo = instance?.initResult?.serverInfo;
    return server.auth
      ? { serverInfo, ttlMs: 0, cacheScope: 'private' }
      : { serverInfo, ttlMs: this.options.cacheTtlMs, cacheScope: 'public' };
  }
}

/** A legacy server's capabilities as 2026-07-28 names them (no tasks, no legacy-only members). */
function modernCapabilities(capabilities: unknown): JsonObject {
  const out: JsonObject = {};
  if (!isObject(capabilities)) return out;
  for (const key of ['experimental', 'logging', 'completions', 'prompts', 'resources', 'tools', 'extensions']) {
    if (isObject(capabilities[key])) out[key] = capabilities[key];
  }
  return out;
}

/** The params object of a parsed message ({} when it has none). */
function paramsOf(message: unknown): JsonObject {
  return isObject(message) && isObject(message.params) ? message.params : {};
}
