import { sendJson, type EventStream, type EventStreamFactory, type JsonObject, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { withTimeout, type Dispatcher } from './dispatcher.js';
import { InstancePool } from './instance-pool.js';
import { errorResponse, INVALID_PARAMS, INVALID_REQUEST, isObject, SERVER_UNAVAILABLE } from './jsonrpc.js';
import { decorateResult, META_SUBSCRIPTION_ID, type ResultDecoration } from './modern-era.js';
import type { CallSink } from './call-sink.js';

/** Which filter field lets which legacy broadcast through. */
const LIST_FILTERS: Readonly<Record<string, string>> = {
  toolsListChanged: 'notifications/tools/list_changed',
  promptsListChanged: 'notifications/prompts/list_changed',
  resourcesListChanged: 'notifications/resources/list_changed',
};

interface Listener {
  readonly instanceKey: string;
  readonly id: unknown;
  readonly methods: Set<string>;
  readonly uris: Set<string>;
  readonly stream: EventStream;
  readonly decoration: ResultDecoration;
}

/** Whether an Accept header allows `text/event-stream` (no header allows anything). */
function acceptsEventStream(header: string | undefined): boolean {
  if (header === undefined) return true;
  return header
    .toLowerCase()
    .split(',')
    .some((range) => {
      const [type, ...rest] = range.split(';').map((p) => p.trim());
      if (rest.some((p) => /^q=0(\.0*)?$/.test(p))) return false;
      return type === 'text/event-stream' || type === 'text/*' || type === '*/*';
    });
}

/** Why `notifications` is not a SubscriptionFilter (2026-07-28 schema), or undefined. */
function filterProblem(filter: unknown): string | undefined {
  if (filter === undefined) return 'params.notifications is required';
  if (!isObject(filter)) return `params.notifications must be an object, got ${JSON.stringify(filter)}`;
  for (const field of Object.keys(LIST_FILTERS)) {
    if (filter[field] !== undefined && typeof filter[field] !== 'boolean') return `params.notifications.${field} must be a boolean, got ${JSON.stringify(filter[field])}`;
  }
  const uris = filter.resourceSubscriptions;
  if (uris !== undefined && (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string'))) return 'params.notifications.resourceSubscriptions must be an array of resource URIs (strings)';
  return undefined;
}

/** A sink for the gateway's own calls: only the answer matters. */
const answerSink = (done: (response: JsonObject) => void = () => undefined): CallSink => ({ session: undefined, response: done, notification: () => undefined, request: () => false });

/**
 * `subscriptions/listen` (basic/patterns/subscriptions.mdx) over a legacy server: one long POST stream
 * per listener, acknowledged first, carrying only the change notifications it opted into, each tagged
 * with its subscription id. Resource subscriptions map onto the server's `resources/subscribe`, counted
 * per process so one listener's end never unsubscribes another's. Closing the stream ends it.
 */
export class Subscriptions {
  private readonly listeners = new Set<Listener>();
  /** subscribers per instance key and URI */
  private readonly resourceRefs = new Map<string, number>();

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly streams: () => EventStreamFactory | undefined,
    private readonly handshakeTimeoutMs: number,
  ) {
    dispatcher.broadcastListeners.add((key, message) => this.deliver(key, message));
  }

  get size(): number {
    return this.listeners.size;
  }

  async listen(ctx: RequestContext, server: ServerDefinition, message: JsonObject, decoration: ResultDecoration): Promise<void> {
    const factory = this.streams();
    if (!factory) {
      sendJson(ctx.res, 200, errorResponse(message.id, INVALID_REQUEST, 'subscriptions/listen needs an event stream and this gateway has none (the transport-sse plugin is not loaded)'));
      return;
    }
    if (!acceptsEventStream(ctx.req.headers.accept)) {
      sendJson(ctx.res, 406, errorResponse(message.id, INVALID_REQUEST, `Not Acceptable: subscriptions/listen answers with an event stream that stays open, and the Accept header ("${ctx.req.headers.accept}") does not allow one; send "Accept: application/json, text/event-stream"`));
      return;
    }
    const params = isObject(message.params) ? message.params : {};
    const problem = filterProblem(params.notifications);
    if (problem !== undefined) {
      sendJson(ctx.res, 400, errorResponse(message.id, INVALID_PARAMS, `Invalid params: ${problem}; params.notifications is a SubscriptionFilter: {"toolsListChanged"?: boolean, "promptsListChanged"?: boolean, "resourcesListChanged"?: boolean, "resourceSubscriptions"?: [uri, …]}`));
      return;
    }
    const wanted = params.notifications as JsonObject;
    const key = InstancePool.keyOf(server, ctx.identity);
    let capabilities: JsonObject;
    try {
      const instance = this.dispatcher.instanceFor(server, ctx.identity);
      await withTimeout(instance.whenReady(), this.handshakeTimeoutMs, `Server "${server.name}" did not become ready`);
      capabilities = isObject(instance.initResult?.capabilities) ? instance.initResult.capabilities : {};
    } catch (err) {
      sendJson(ctx.res, 200, errorResponse(message.id, SERVER_UNAVAILABLE, (err as Error).message));
      return;
    }
    // acknowledge only what the server can send
    const agreed: JsonObject = {};
    const methods = new Set<string>();
    const capabilityOf: Record<string, unknown> = { toolsListChanged: capabilities.tools, promptsListChanged: capabilities.prompts, resourcesListChanged: capabilities.resources };
    for (const [field, method] of Object.entries(LIST_FILTERS)) {
      const cap = capabilityOf[field];
      if (wanted[field] === true && isObject(cap) && cap.listChanged === true) {
        agreed[field] = true;
        methods.add(method);
      }
    }
    const uris = new Set<string>();
    if (Array.isArray(wanted.resourceSubscriptions) && isObject(capabilities.resources) && capabilities.resources.subscribe === true) {
      for (const uri of wanted.resourceSubscriptions) if (typeof uri === 'string') uris.add(uri);
      if (uris.size > 0) agreed.resourceSubscriptions = [...uris];
    }
    // the server has taken the resource subscriptions before the acknowledgment says so
    await Promise.all([...uris].map((uri) => this.subscribe(server, ctx, key, uri)));
    if (ctx.res.destroyed) {
      for (const uri of uris) this.unsubscribe(server, ctx, key, uri);
      return;
    }
    const stream = factory.open(ctx.res);
    const listener: Listener = { instanceKey: key, id: message.id, methods, uris, stream, decoration };
    this.listeners.add(listener);
    // an open listen stream keeps its process: never stopped for idleness or to make room
    const release = this.dispatcher.holdStream(key);
    stream.onClose(release);
    stream.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { _meta: { [META_SUBSCRIPTION_ID]: message.id }, notifications: agreed } }), 'message');
    stream.onClose(() => {
      if (!this.listeners.delete(listener)) return;
      for (const uri of uris) this.unsubscribe(server, ctx, key, uri);
    });
  }

  /** Ends every listener gracefully: the listen request's result, then the end of the stream. */
  closeAll(): void {
    for (const listener of [...this.listeners]) {
      this.listeners.delete(listener);
      const result = decorateResult('subscriptions/listen', { jsonrpc: '2.0', id: listener.id, result: { _meta: { [META_SUBSCRIPTION_ID]: listener.id } } }, listener.decoration);
      listener.stream.send(JSON.stringify(result), 'message');
      listener.stream.close('gateway stopping');
    }
  }

  private deliver(key: string, message: JsonObject): void {
    if (this.listeners.size === 0) return;
    const method = String(message.method);
    const params = isObject(message.params) ? message.params : {};
    for (const listener of this.listeners) {
      if (listener.instanceKey !== key) continue;
      if (method === 'notifications/resources/updated') {
        if (typeof params.uri !== 'string' || !listener.uris.has(params.uri)) continue;
      } else if (!listener.methods.has(method)) continue;
      const meta = isObject(params._meta) ? params._meta : {};
      const tagged = { jsonrpc: '2.0', method, params: { ...params, _meta: { ...meta, [META_SUBSCRIPTION_ID]: listener.id } } };
      listener.stream.send(JSON.stringify(tagged), 'message');
    }
  }

  private subscribe(server: ServerDefinition, ctx: RequestContext, key: string, uri: string): Promise<void> {
    const ref = `${key}\u0000${uri}`;
    const count = this.resourceRefs.get(ref) ?? 0;
    this.resourceRefs.set(ref, count + 1);
    if (count > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.dispatcher.request(server, ctx.identity, undefined, { jsonrpc: '2.0', id: 0, method: 'resources/subscribe', params: { uri } }, answerSink(() => resolve()));
    });
  }

  private unsubscribe(server: ServerDefinition, ctx: RequestContext, key: string, uri: string): void {
    const ref = `${key}\u0000${uri}`;
    const count = (this.resourceRefs.get(ref) ?? 1) - 1;
    if (count > 0) {
      this.resourceRefs.set(ref, count);
      return;
    }
    this.resourceRefs.delete(ref);
    this.dispatcher.request(server, ctx.identity, undefined, { jsonrpc: '2.0', id: 0, method: 'resources/unsubscribe', params: { uri } }, answerSink());
  }
}
