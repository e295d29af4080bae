import {
  principalOf,
  jsonText,
  sendJson,
  type EventStream,
  type EventStreamFactory,
  type JsonObject,
  type RequestContext,
  type ServerDefinition,
} from '../../core/index.js';
import type { Dispatcher } from './dispatcher.js';
import {
  answerNestedTooDeeply,
  BATCH_VERSION,
  errorResponse,
  INVALID_PARAMS,
  INVALID_REQUEST,
  idOf,
  type JsonRpcId,
  initializeProblem,
  isNestedTooDeeply,
  kindOf,
  messageProblem,
  PARSE_ERROR,
  REQUEST_CANCELLED,
  SERVER_UNAVAILABLE,
  SUPPORTED_VERSIONS,
} from './jsonrpc.js';
import type { ModernEndpoint } from './modern-endpoint.js';
import { ALL_VERSIONS, isModernRequest, MODERN_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION } from './modern-era.js';
import type { CallSink } from './call-sink.js';
import { isInstanceLimitError } from './instance-pool.js';
import { clientAddress, isSessionLimitError } from './session-limits.js';
import type { Session } from './sessions.js';

interface Accepts {
  readonly json: boolean;
  readonly sse: boolean;
}

const ACCEPT_ANY: Accepts = { json: true, sse: false };
/** Clients send the same few Accept headers on every call: their reading is kept (bounded) */
const acceptsSeen = new Map<string, Accepts>();

function accepts(header: string | undefined): Accepts {
  if (!header) return ACCEPT_ANY;
  const seen = acceptsSeen.get(header);
  if (seen) return seen;
  const h = header.toLowerCase();
  const any = h.includes('*/*') || h.includes('application/*');
  const result: Accepts = { json: any || h.includes('application/json'), sse: h.includes('text/event-stream') };
  if (acceptsSeen.size >= 64) acceptsSeen.clear();
  acceptsSeen.set(header, result);
  return result;
}

const INITIALIZE_NEEDS_ID = 'Invalid Request: initialize is a request, not a notification: send it with an "id" (a string or a number) to get the server\'s answer and a session';

/**
 * The id an error about a parsed body answers with (JSON-RPC 2.0 §5): a single request's own id, else null
 * (a batch, a notification, a response or an invalid message). Called on error paths only.
 */
function replyIdOf(body: unknown): JsonRpcId {
  return kindOf(body) === 'request' ? idOf(body) : null;
}

/** Answers one call over HTTP: plain JSON, or an SSE stream once the call has something to stream. */
class HttpCallSink implements CallSink {
  done = false;
  private stream: EventStream | undefined;

  constructor(
    private readonly ctx: RequestContext,
    readonly session: Session | undefined,
    private readonly accept: Accepts,
    private readonly streams: EventStreamFactory | undefined,
    private readonly headers: Record<string, string> | undefined,
  ) {}

  response(message: JsonObject): void {
    if (this.done) return;
    this.done = true;
    try {
      if (!this.stream && this.accept.json) {
        sendJson(this.ctx.res, 200, message, this.headers);
        return;
      }
      if (this.openStream()) {
        this.stream!.send(jsonText(message), 'message');
        this.stream!.close();
      } else {
        sendJson(this.ctx.res, 200, message, this.headers);
      }
    } catch (err) {
      // serializing threw before anything was written: the client still gets an answer
      if (!isNestedTooDeeply(err)) throw err;
      this.done = false;
      this.response(answerNestedTooDeeply(message));
    }
  }

  refused(message: JsonObject, status: number, headers: Record<string, string>): void {
    if (this.done) return;
    if (this.stream || this.ctx.res.headersSent) {
      this.response(message);
      return;
    }
    this.done = true;
    sendJson(this.ctx.res, status, message, { ...this.headers, ...headers });
  }

  notification(message: JsonObject): void {
    if (this.done) return;
    if (this.openStream()) this.stream!.send(jsonText(message), 'message');
    else this.session?.push(message);
  }

  request(message: JsonObject): boolean {
    if (this.done) return false;
    if (this.openStream()) return this.stream!.send(jsonText(message), 'message');
    return this.session?.push(message) ?? false;
  }

  /**
   * The call ended with no response (the client cancelled it, its session ended). The spec wants no
   * response to a cancelled request, so an event stream ends empty; a client that takes only JSON gets
   * a JSON-RPC error, the one answer it can read. Either way its POST ends.
   */
  cancelled(clientId: unknown, reason: string): void {
    if (this.done) return;
    this.done = true;
    if (this.openStream()) this.stream!.close(`the call was cancelled: ${reason}`);
    else if (this.stream) return; // already closed: the POST ended with it
    else if (!this.ctx.res.headersSent) sendJson(this.ctx.res, 200, errorResponse(clientId, REQUEST_CANCELLED, `Request cancelled: ${reason}`), this.headers);
    else if (!this.ctx.res.writableEnded) this.ctx.res.end();
  }

  private openStream(): boolean {
    if (this.stream) return !this.stream.closed;
    if (!this.accept.sse || !this.streams || this.ctx.res.headersSent) return false;
    this.stream = this.streams.open(this.ctx.res, { headers: this.headers });
    return true;
  }
}

/** Collects the responses of a batch (2025-03-26) into one JSON array. */
class BatchSink implements CallSink {
  private readonly results: JsonObject[] = [];
  private expected = 0;
  private sealed = false;
  constructor(readonly session: Session | undefined, private readonly finish: (results: JsonObject[]) => void) {}
  expect(): void {
    this.expected++;
  }
  add(message: JsonObject): void {
    this.results.push(message);
  }
  seal(): void {
    this.sealed = true;
    this.maybeFinish();
  }
  response(message: JsonObject): void {
    this.results.push(message);
    this.expected--;
    this.maybeFinish();
  }
  notification(message: JsonObject): void {
    this.session?.push(message);
  }
  request(message: JsonObject): boolean {
    return this.session?.push(message) ?? false;
  }
  /** a cancelled call has no response in the array; the batch still ends */
  cancelled(): void {
    this.expected--;
    this.maybeFinish();
  }
  private maybeFinish(): void {
    if (this.sealed && this.expected === 0) this.finish(this.results);
  }
}

/** `/{name}/mcp`: the Streamable HTTP transport, and the seed's bare JSON-RPC calls without a session. */
export class StreamableHttpEndpoint {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly streams: () => EventStreamFactory | undefined,
    private readonly modern?: ModernEndpoint,
  ) {}

  async post(ctx: RequestContext): Promise<void> {
    const server = this.dispatcher.server(ctx.params.name!);
    const { req, res } = ctx;
    const contentType = req.headers['content-type'];
    if (contentType !== undefined && contentType !== 'application/json' && contentType.split(';', 1)[0]!.trim().toLowerCase() !== 'application/json') {
      sendJson(res, 415, errorResponse(null, INVALID_REQUEST, `Unsupported Content-Type "${contentType}": send the JSON-RPC message as application/json`));
      return;
    }
    const accept = accepts(req.headers.accept);
    if (!accept.json && !accept.sse) {
      sendJson(res, 406, errorResponse(null, INVALID_REQUEST, 'Not Acceptable: the Accept header must allow application/json or text/event-stream'));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(ctx.body!.toString('utf8'));
    } catch (err) {
      sendJson(res, 400, errorResponse(null, PARSE_ERROR, `Parse error: the body is not valid JSON (${(err as Error).message})`));
      return;
    }
    // protocol 2026-07-28 is told apart by the request itself (modern-era.ts) and served statelessly
    if (this.modern && isModernRequest(body, req.headers)) {
      await this.modern.handle(ctx, server, body, accept);
      return;
    }
    const version = req.headers['mcp-protocol-version'];
    if (typeof version === 'string' && !(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
      const modernOnly = (MODERN_VERSIONS as readonly string[]).includes(version);
      const why = modernOnly
        ? `MCP-Protocol-Version "${version}" is stateless: it has no initialize or sessions; send each request with "_meta": {"io.modelcontextprotocol/protocolVersion": "${version}", "io.modelcontextprotocol/clientCapabilities": {…}} and the Mcp-Method header (see server/discover), or use ${SUPPORTED_VERSIONS.join(', ')} with initialize`
        : `Unsupported MCP-Protocol-Version "${version}": this gateway supports ${ALL_VERSIONS.join(', ')}`;
      const answer = errorResponse(replyIdOf(body), UNSUPPORTED_PROTOCOL_VERSION, why);
      (answer.error as JsonObject).data = { supported: [...ALL_VERSIONS], requested: version };
      sendJson(res, 400, answer);
      return;
    }
    const session = this.sessionOf(ctx, server, body);
    if (session === null) return;
    if (Array.isArray(body)) {
      this.batch(ctx, server, session, body, typeof version === 'string' ? version : undefined);
      return;
    }
    await this.single(ctx, server, session, body, accept);
  }

  private async single(ctx: RequestContext, server: ServerDefinition, session: Session | undefined, message: unknown, accept: Accepts): Promise<void> {
    const { res } = ctx;
    switch (kindOf(message)) {
      case 'invalid': {
        const problem = messageProblem(message);
        sendJson(res, 400, errorResponse(idOf(message), problem.code, problem.message));
        return;
      }
      case 'notification':
        if ((message as JsonObject).method === 'initialize') {
          sendJson(res, 400, errorResponse(null, INVALID_REQUEST, INITIALIZE_NEEDS_ID));
          return;
        }
        this.dispatcher.notification(server, ctx.identity, session, message as JsonObject);
        res.writeHead(202).end();
        return;
      case 'response':
        this.dispatcher.response(session, message as JsonObject);
        res.writeHead(202).end();
        return;
      case 'request':
        break;
    }
    const request = message as JsonObject;
    if (request.method === 'initialize') {
      if (session) {
        sendJson(res, 400, errorResponse(request.id, INVALID_REQUEST, 'Invalid Request: this session (Mcp-Session-Id) is already initialized; to start a new session, send initialize without the Mcp-Session-Id header'));
        return;
      }
      await this.initialize(ctx, server, request, accept);
      return;
    }
    const sink = new HttpCallSink(ctx, session, accept, this.streams(), undefined);
    const cancel = this.dispatcher.request(server, ctx.identity, session, request, sink);
    if (!sink.done) {
      // 'close' comes once: `on` spares the per-request wrapper of `once`
      res.on('close', () => {
        if (!sink.done) {
          sink.done = true;
          cancel('client disconnected');
        }
      });
    }
  }

  private async initialize(ctx: RequestContext, server: ServerDefinition, request: JsonObject, accept: Accepts): Promise<void> {
    const problem = initializeProblem(request);
    if (problem !== undefined) {
      sendJson(ctx.res, 400, errorResponse(request.id, INVALID_PARAMS, problem));
      return;
    }
    let opened: Awaited<ReturnType<Dispatcher['initialize']>>;
    try {
      opened = await this.dispatcher.initialize(server, ctx.identity, request, undefined, clientAddress(ctx.req.socket.remoteAddress));
    } catch (err) {
      if (isSessionLimitError(err) || isInstanceLimitError(err)) {
        const data = { limit: err.limit, retryAfterSeconds: err.retryAfterSeconds };
        sendJson(ctx.res, err.statusCode, errorResponse(request.id, SERVER_UNAVAILABLE, err.message, data), err.headers);
        return;
      }
      sendJson(ctx.res, 200, errorResponse(request.id, SERVER_UNAVAILABLE, (err as Error).message));
      return;
    }
    const headers = { 'mcp-session-id': opened.session.id };
    const sink = new HttpCallSink(ctx, opened.session, accept, this.streams(), headers);
    sink.response(opened.response);
  }

  private batch(ctx: RequestContext, server: ServerDefinition, session: Session | undefined, items: unknown[], headerVersion: string | undefined): void {
    const version = session?.protocolVersion ?? headerVersion;
    if (version !== BATCH_VERSION) {
      const why = session
        ? `this session speaks ${version ?? 'a version without batches'}`
        : version !== undefined
          ? `this request's MCP-Protocol-Version is ${version}`
          : `a call without a session takes one JSON-RPC message per POST (or a batch with "MCP-Protocol-Version: ${BATCH_VERSION}")`;
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, `Invalid Request: batches (JSON arrays) exist only in protocol version ${BATCH_VERSION}; ${why}`));
      return;
    }
    if (items.length === 0) {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, 'Invalid Request: an empty batch'));
      return;
    }
    const sink = new BatchSink(session, (results) => {
      if (results.length === 0) ctx.res.writeHead(202).end();
      else sendJson(ctx.res, 200, results);
    });
    for (const [index, item] of items.entries()) {
      const kind = kindOf(item);
      if (kind === 'invalid') {
        const problem = messageProblem(item);
        sink.add(errorResponse(idOf(item), problem.code, `${problem.message} (batch item ${index})`));
      }
      else if (kind === 'notification' && (item as JsonObject).method === 'initialize') sink.add(errorResponse(null, INVALID_REQUEST, `${INITIALIZE_NEEDS_ID} (batch item ${index})`));
      else if (kind === 'notification') this.dispatcher.notification(server, ctx.identity, session, item as JsonObject);
      else if (kind === 'response') this.dispatcher.response(session, item as JsonObject);
      else if ((item as JsonObject).method === 'initialize') sink.add(errorResponse((item as JsonObject).id, INVALID_REQUEST, 'initialize cannot be part of a batch'));
      else {
        sink.expect();
        this.dispatcher.request(server, ctx.identity, session, item as JsonObject, sink);
      }
    }
    sink.seal();
  }

  get(ctx: RequestContext): void {
    const server = this.dispatcher.server(ctx.params.name!);
    const streams = this.streams();
    if (!streams) {
      sendJson(ctx.res, 405, errorResponse(null, INVALID_REQUEST, 'This gateway has no server-to-client stream (the transport-sse plugin is not loaded)'), { allow: 'POST, DELETE' });
      return;
    }
    if (!accepts(ctx.req.headers.accept).sse) {
      sendJson(ctx.res, 406, errorResponse(null, INVALID_REQUEST, 'Not Acceptable: GET opens an event stream; send Accept: text/event-stream'));
      return;
    }
    if (ctx.req.headers['mcp-session-id'] === undefined) {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, 'Bad Request: GET needs the Mcp-Session-Id header of an initialized session'));
      return;
    }
    const session = this.sessionOf(ctx, server);
    if (!session) return;
    session.stream?.close('replaced by a newer stream');
    const stream = streams.open(ctx.res);
    session.stream = stream;
    session.lastSeen = Date.now();
    stream.onClose(() => {
      if (session.stream === stream) session.stream = undefined;
      session.lastSeen = Date.now();
    });
  }

  delete(ctx: RequestContext): void {
    const server = this.dispatcher.server(ctx.params.name!);
    if (ctx.req.headers['mcp-session-id'] === undefined) {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, 'Bad Request: DELETE needs the Mcp-Session-Id header of the session to end'));
      return;
    }
    const session = this.sessionOf(ctx, server);
    if (!session) return;
    this.dispatcher.endSession(session);
    ctx.res.writeHead(204).end();
  }

  /**
   * The session named by the header: undefined without a header, null (already answered 404, with the id
   * of `body` when it is a single request) when unknown.
   */
  private sessionOf(ctx: RequestContext, server: ServerDefinition, body?: unknown): Session | undefined | null {
    const id = ctx.req.headers['mcp-session-id'];
    if (id === undefined) return undefined;
    const session = typeof id === 'string' ? this.dispatcher.sessions.get(id) : undefined;
    // a session is bound to its server and its caller: anything else is "not found", never someone else's session
    if (!session || session.server !== server || principalOf(session.identity) !== principalOf(ctx.identity)) {
      const why = typeof id === 'string' ? this.dispatcher.sessions.endedReason(id, principalOf(ctx.identity)) : undefined;
      sendJson(ctx.res, 404, errorResponse(replyIdOf(body), -32001, `Session not found: ${why ?? 'it ended or expired'}; send initialize to start a new one`));
      return null;
    }
    return session;
  }
}

