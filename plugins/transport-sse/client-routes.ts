import { randomBytes } from 'node:crypto';
import {
  CHANNELS,
  errors,
  FluidError,
  jsonText,
  principalOf,
  sendJson,
  type ChannelBroker,
  type ClientChannel,
  type EventStream,
  type EventStreamFactory,
  type JsonObject,
  type Logger,
  type PluginApi,
  type RequestContext,
  type RouteCors,
} from '../../core/index.js';

interface LegacySession {
  readonly server: string;
  /** the principal of the caller that opened it */
  readonly principal: string;
  channel: ClientChannel | undefined;
}

/** The MCP headers a browser client sends and reads on the SSE routes. */
const MCP_CORS: RouteCors = {
  allowHeaders: ['mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name'],
  exposeHeaders: ['Mcp-Session-Id', 'MCP-Protocol-Version'],
};

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

const isId = (v: unknown): boolean => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

const CALL_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESPONSE_MEMBERS = new Set(['jsonrpc', 'id', 'result', 'error']);

/**
 * Why a message is not a request, notification or response by JSON-RPC 2.0's shape as MCP uses it
 * (params always an object, no members beyond the spec's), as the JSON-RPC error code and message;
 * undefined when it is one. `__proto__` from JSON.parse is an own member like any other.
 */
function messageProblem(msg: JsonObject): { code: number; message: string } | undefined {
  if (typeof msg.method === 'string') {
    const params = msg.params;
    if (params !== undefined && !isObject(params)) {
      // an array is JSON-RPC (by-position params) but not MCP: -32602; anything else is not JSON-RPC at all: -32600
      if (!Array.isArray(params)) {
        const got = params === null ? 'null' : `a ${typeof params}`;
        return { code: -32600, message: `Invalid Request: "params" of ${msg.method} must be an object, got ${got} (JSON-RPC 2.0 params are structured values; MCP takes named params such as {"name": …})` };
      }
      return { code: -32602, message: `Invalid params: "params" of ${msg.method} must be an object, got an array (JSON-RPC 2.0 allows by-position arrays, MCP does not: send named params such as {"name": …})` };
    }
    const extra = Object.keys(msg).find((k) => !CALL_MEMBERS.has(k));
    if (extra !== undefined) return { code: -32600, message: `Invalid Request: unexpected member ${JSON.stringify(extra)}; a JSON-RPC request or notification has only "jsonrpc", "id", "method" and "params" (put extra data in params or params._meta)` };
    return !Object.hasOwn(msg, 'id') || isId(msg.id) ? undefined : { code: -32600, message: 'Invalid Request: "id" must be a string or a number' };
  }
  const shape = 'expected a JSON-RPC 2.0 message: a request or notification (a string "method", "params" as an object, a string or number "id" for a request) or a response ("id" with "result" or "error")';
  if (msg.method !== undefined || !Object.hasOwn(msg, 'id') || !(isId(msg.id) || msg.id === null) || !(Object.hasOwn(msg, 'result') || Object.hasOwn(msg, 'error'))) {
    return { code: -32600, message: `Invalid Request: ${shape}` };
  }
  const extra = Object.keys(msg).find((k) => !RESPONSE_MEMBERS.has(k));
  return extra === undefined ? undefined : { code: -32600, message: `Invalid Request: unexpected member ${JSON.stringify(extra)}; a JSON-RPC response has only "jsonrpc", "id" and "result" or "error"` };
}

/** JSON-RPC errors answered as plain JSON, before any stream is opened. */
function rpcError(ctx: RequestContext, status: number, code: number, message: string, id: unknown = null): void {
  sendJson(ctx.res, status, { jsonrpc: '2.0', id, error: { code, message } });
}

/** Parses one JSON-RPC message from the body, or answers the client with the JSON-RPC error and returns undefined. */
function parseMessage(ctx: RequestContext, allowBatch: boolean): JsonObject[] | undefined {
  const text = ctx.body?.toString('utf8') ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    rpcError(ctx, 400, -32700, `Parse error: the body of ${ctx.method} ${ctx.path} is not valid JSON (${(err as Error).message})`);
    return undefined;
  }
  const list = Array.isArray(parsed) && allowBatch ? parsed : [parsed];
  if (list.length === 0 || !list.every(isObject)) {
    const what = Array.isArray(parsed) ? (allowBatch ? 'an empty batch or one with non-objects' : 'a batch') : 'not an object';
    rpcError(ctx, 400, -32600, `Invalid Request: expected one JSON-RPC message object, got ${what}`);
    return undefined;
  }
  for (const msg of list) {
    if (msg.jsonrpc !== undefined && msg.jsonrpc !== '2.0') {
      rpcError(ctx, 400, -32600, 'Invalid Request: "jsonrpc" must be "2.0"', msg.id ?? null);
      return undefined;
    }
    const problem = messageProblem(msg);
    if (problem) {
      const id = isId(msg.id) ? msg.id : null;
      rpcError(ctx, 400, problem.code, list.length > 1 ? `${problem.message} (batch item ${list.indexOf(msg)})` : problem.message, id);
      return undefined;
    }
  }
  return list.map((msg) => (msg.jsonrpc === undefined ? { jsonrpc: '2.0', ...msg } : msg));
}

/** The routes that serve clients over SSE: POST /:name/sse, and the 2024-11-05 HTTP+SSE transport. */
export class SseClientRoutes {
  private readonly sessions = new Map<string, LegacySession>();

  constructor(
    private readonly api: PluginApi,
    private readonly streams: EventStreamFactory,
    private readonly log: Logger,
  ) {}

  register(): void {
    this.api.route({ method: 'POST', path: '/:name/sse', guard: 'name', cors: MCP_CORS, handler: (ctx) => this.streamCall(ctx) });
    this.api.route({ method: 'GET', path: '/:name/sse', guard: 'name', cors: MCP_CORS, readBody: false, handler: (ctx) => this.openSession(ctx) });
    this.api.route({ method: 'POST', path: '/:name/messages', guard: 'name', cors: MCP_CORS, handler: (ctx) => this.postMessage(ctx) });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private serverName(ctx: RequestContext): string {
    const name = ctx.params.name ?? '';
    if (!this.api.servers.get(name)) {
      const known = this.api.servers.list().map((s) => s.name);
      throw errors.FMCP_ERR_UNKNOWN_SERVER(name, known.length > 0 ? known.join(', ') : 'no servers');
    }
    return name;
  }

  private broker(name: string): ChannelBroker {
    const broker = this.api.tryResolve(CHANNELS);
    if (!broker) {
      throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(name, 'nothing routes calls to servers: the gateway needs the proxy-jsonrpc plugin (kernel.use(proxyJsonRpc()))');
    }
    return broker;
  }

  /** POST /:name/sse: one request in; its notifications, then its response, out as events. */
  private async streamCall(ctx: RequestContext): Promise<void> {
    const name = this.serverName(ctx);
    const broker = this.broker(name);
    const messages = parseMessage(ctx, false);
    if (!messages) return;
    const request = messages[0]!;
    if (typeof request.method !== 'string') {
      rpcError(ctx, 400, -32600, 'Invalid Request: "method" must be a string such as "tools/list"', request.id ?? null);
      return;
    }
    if (request.id === undefined || request.id === null) {
      rpcError(ctx, 400, -32600, `Invalid Request: POST /${name}/sse takes a request with an "id" (a notification has no answer to stream; send it to /${name}/mcp)`);
      return;
    }
    const stream = this.streams.open(ctx.res);
    const abort = new AbortController();
    let done = false;
    stream.onClose(() => {
      if (!done) abort.abort(new Error('the client closed the stream'));
    });
    let response: JsonObject;
    try {
      response = await broker.call(name, ctx.identity, request, (notification) => sendMessage(stream, notification), abort.signal);
    } catch (err) {
      if (abort.signal.aborted) return;
      response = {
        jsonrpc: '2.0',
        id: request.id,
        error: { code: -32603, message: (err as Error).message, data: err instanceof FluidError ? { code: err.code } : undefined },
      };
      if (!(err instanceof FluidError)) this.log.error({ error: (err as Error).message, method: request.method }, 'streamed call failed');
    } finally {
      done = true;
    }
    sendMessage(stream, response);
    stream.close('the response was sent');
  }

  /** GET /:name/sse: opens an HTTP+SSE session; its first event names where to POST. */
  private async openSession(ctx: RequestContext): Promise<void> {
    const name = this.serverName(ctx);
    const broker = this.broker(name);
    if (ctx.method === 'HEAD') {
      // the router answers HEAD with the GET route: say what GET would give, without opening a session
      ctx.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      ctx.res.end();
      return;
    }
    const replica = this.api.kernel.options.replicaId;
    const sessionId = (replica ? `${replica}.` : '') + randomBytes(16).toString('hex');
    const session: LegacySession = { server: name, principal: principalOf(ctx.identity), channel: undefined };
    let stream: EventStream | undefined;
    const early: JsonObject[] = [];
    let channelClosed = false;
    const channel = await broker.open(
      name,
      ctx.identity,
      (message) => {
        if (stream) sendMessage(stream, message);
        else early.push(message);
      },
      () => {
        channelClosed = true;
        stream?.close('the server channel closed');
      },
      ctx.req.socket.remoteAddress,
    );
    if (ctx.res.destroyed || channelClosed) {
      channel.close();
      if (!ctx.res.headersSent && !ctx.res.destroyed) {
        throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(name, 'the channel to the server closed as it opened; try again');
      }
      return;
    }
    session.channel = channel;
    this.sessions.set(sessionId, session);
    stream = this.streams.open(ctx.res);
    stream.onClose(() => {
      this.sessions.delete(sessionId);
      channel.close();
    });
    stream.send(`/${encodeURIComponent(name)}/messages?sessionId=${sessionId}`, 'endpoint');
    for (const message of early.splice(0)) sendMessage(stream, message);
  }

  /** POST /:name/messages?sessionId=…: one client message (or a batch) for an HTTP+SSE session. */
  private postMessage(ctx: RequestContext): void {
    const name = this.serverName(ctx);
    const sessionId = ctx.query.get('sessionId');
    if (!sessionId) {
      throw errors.FMCP_ERR_BAD_REQUEST(`POST /${name}/messages needs ?sessionId=…: open GET /${name}/sse first and POST to the endpoint its first event names`);
    }
    const session = this.sessions.get(sessionId);
    // a session belongs to the identity that opened it: to anyone else it does not exist
    if (!session || session.server !== name || session.principal !== principalOf(ctx.identity) || !session.channel) {
      throw errors.FMCP_ERR_SESSION_UNKNOWN(sessionId, `/${name}/messages`, `open GET /${name}/sse again and use the endpoint it sends`);
    }
    const messages = parseMessage(ctx, true);
    if (!messages) return;
    ctx.res.writeHead(202, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 8 });
    ctx.res.end('Accepted');
    for (const message of messages) session.channel.send(message, ctx.identity);
  }

  closeAll(): void {
    for (const session of this.sessions.values()) session.channel?.close();
    this.sessions.clear();
  }
}

function sendMessage(stream: EventStream, message: JsonObject): void {
  stream.send(jsonText(message), 'message');
}
