import type { Agent } from 'node:http';
import { AgentConnection } from './agent-conn.js';
import { HttpConnection, type HttpAnswer } from './http-conn.js';
import type { RpcMessage, StdioServer } from './stdio-conn.js';

/** The legacy protocol version the bench's sessions ask for in `initialize`. */
export const PROTOCOL = '2025-06-18';
/** The modern (stateless) protocol version: no initialize, no session, version and capabilities in `_meta`. */
export const MODERN_PROTOCOL = '2026-07-28';

/** One client's view of a target: a session, echo calls, a streamed call with progress. */
export interface Session {
  open(): Promise<void>;
  /** one `tools/call echo`; throws unless the answer carries this call's id and echoes `message` */
  echo(message: string): Promise<void>;
  /** one `trigger-long-running-operation` call whose progress events and answer come back as a stream */
  stream(token: string): Promise<void>;
  /** ends the session (DELETE) */
  close(): Promise<void>;
  /** drops the connection; a call in flight fails */
  destroy(reason?: string): void;
}

export const STREAM_STEPS = 2;
// no sleeping in the tool: the rate shows the cost of streaming, not the server's timers
const STREAM_ARGS = `{"duration":0,"steps":${STREAM_STEPS}}`;

function echoText(msg: RpcMessage, id: number, message: string): void {
  if (msg.id !== id) throw new Error(`answer carries id ${JSON.stringify(msg.id)}, the request had ${id}`);
  if (msg.error) throw new Error(`JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
  const text = msg.result?.content?.[0]?.text;
  if (text !== `Echo: ${message}`) throw new Error(`the answer echoes "${String(text).slice(0, 60)}", the request sent "${message}"`);
}

function checkStream(msg: RpcMessage | undefined, id: number, progress: number): void {
  if (!msg) throw new Error(`the stream ended without the answer to request ${id}`);
  if (msg.id !== id) throw new Error(`answer carries id ${JSON.stringify(msg.id)}, the request had ${id}`);
  if (msg.error) throw new Error(`JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
  const text = msg.result?.content?.[0]?.text ?? '';
  if (!text.startsWith('Long running operation completed')) throw new Error(`unexpected answer "${text.slice(0, 60)}"`);
  if (progress !== STREAM_STEPS) throw new Error(`${STREAM_STEPS} progress events expected before the answer, got ${progress}`);
}

/** The JSON-RPC messages of an answer: one JSON body, or the `data:` lines of an event stream. */
function messagesOf(answer: HttpAnswer): RpcMessage[] {
  const type = answer.headers['content-type'] ?? '';
  if (!type.startsWith('text/event-stream')) return [JSON.parse(answer.body) as RpcMessage];
  const out: RpcMessage[] = [];
  let data = '';
  for (const line of answer.body.split('\n')) {
    if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
    else if (line === '' || line === '\r') {
      if (data !== '') out.push(JSON.parse(data) as RpcMessage);
      data = '';
    }
  }
  if (data !== '') out.push(JSON.parse(data) as RpcMessage);
  return out;
}

function httpError(answer: HttpAnswer): Error {
  return new Error(`HTTP ${answer.status}: ${answer.body.replace(/\s+/g, ' ').slice(0, 160)}`);
}

/** A Streamable HTTP client session over one keep-alive connection, with pre-serialized heads. */
export class HttpSession implements Session {
  private readonly conn: HttpConnection | AgentConnection;
  private head: string;
  private readonly baseHead: string;
  private nextId = 1;
  private sessionId: string | undefined;

  constructor(
    port: number,
    private readonly path: string,
    private readonly streamPath: string | undefined,
    token: string | undefined,
    agent: Agent | undefined,
    /** the echo tool's name on this endpoint (`everything__echo` through a group) */
    private readonly tool = 'echo',
  ) {
    this.conn = agent ? new AgentConnection('127.0.0.1', port, agent) : new HttpConnection('127.0.0.1', port);
    const auth = token !== undefined ? `Authorization: Bearer ${token}\r\n` : '';
    this.baseHead = `Host: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${auth}`;
    this.head = `POST ${path} HTTP/1.1\r\n${this.baseHead}`;
  }

  async open(): Promise<void> {
    const body = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"${PROTOCOL}","capabilities":{},"clientInfo":{"name":"fluidmcp-bench","version":"1"}}}`;
    const answer = await this.conn.request(this.head, body);
    if (answer.status !== 200) throw httpError(answer);
    const msg = messagesOf(answer).find((m) => m.id === 0);
    if (!msg?.result) throw new Error(`initialize failed: ${msg?.error?.message ?? answer.body.slice(0, 160)}`);
    const version = typeof msg.result['protocolVersion'] === 'string' ? msg.result['protocolVersion'] : PROTOCOL;
    this.sessionId = answer.headers['mcp-session-id'];
    const session = this.sessionId !== undefined ? `Mcp-Session-Id: ${this.sessionId}\r\n` : '';
    this.head = `POST ${this.path} HTTP/1.1\r\n${this.baseHead}${session}MCP-Protocol-Version: ${version}\r\n`;
    const note = await this.conn.request(this.head, '{"jsonrpc":"2.0","method":"notifications/initialized"}');
    if (note.status !== 202 && note.status !== 200 && note.status !== 204) throw httpError(note);
  }

  async echo(message: string): Promise<void> {
    const id = this.nextId++;
    const answer = await this.conn.request(this.head, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${this.tool}","arguments":{"message":"${message}"}}}`);
    if (answer.status !== 200) throw httpError(answer);
    const msgs = messagesOf(answer);
    echoText(msgs.find((m) => m.id === id) ?? msgs[msgs.length - 1]!, id, message);
  }

  async stream(token: string): Promise<void> {
    const id = this.nextId++;
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":${STREAM_ARGS},"_meta":{"progressToken":"${token}"}}}`;
    // the gateway's POST /{name}/sse takes a bare call; the peers stream it as the SSE answer of /mcp
    const head = this.streamPath !== undefined ? `POST ${this.streamPath} HTTP/1.1\r\n${this.baseHead}` : this.head;
    const answer = await this.conn.request(head, body);
    if (answer.status !== 200) throw httpError(answer);
    if (!(answer.headers['content-type'] ?? '').startsWith('text/event-stream')) throw new Error(`the answer is ${answer.headers['content-type']}, not an event stream`);
    const msgs = messagesOf(answer);
    const progress = msgs.filter((m) => m.method === 'notifications/progress' && m.params?.progressToken === token).length;
    checkStream(msgs.find((m) => m.id !== undefined && m.method === undefined), id, progress);
  }

  async close(): Promise<void> {
    if (this.sessionId === undefined) return;
    const head = this.head.replace(/^POST /, 'DELETE ').replace('Content-Type: application/json\r\n', '');
    const answer = await this.conn.request(head, '');
    this.sessionId = undefined;
    if (answer.status >= 300 && answer.status !== 405) throw httpError(answer);
  }

  destroy(reason?: string): void {
    this.conn.destroy(reason);
  }
}

/** A client of the direct target: ids unique on the shared pipe, no HTTP. */
export class StdioSession implements Session {
  private dead: string | undefined;
  constructor(private readonly server: StdioServer) {}

  async open(): Promise<void> {}

  async echo(message: string): Promise<void> {
    if (this.dead) throw new Error(this.dead);
    const id = this.server.id();
    const msg = await this.server.send(id, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"${message}"}}}\n`);
    echoText(msg, id, message);
  }

  async stream(token: string): Promise<void> {
    if (this.dead) throw new Error(this.dead);
    const id = this.server.id();
    let progress = 0;
    this.server.onProgress(token, () => progress++);
    try {
      const msg = await this.server.send(id, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":${STREAM_ARGS},"_meta":{"progressToken":"${token}"}}}\n`);
      checkStream(msg, id, progress);
    } finally {
      this.server.onProgress(token, undefined);
    }
  }

  async close(): Promise<void> {}

  destroy(reason = 'stopped by the bench'): void {
    this.dead = reason;
    this.server.abandon(reason);
  }
}

/** What every modern request carries in `_meta`: the protocol version and the client's capabilities (none). */
const MODERN_META = `{"io.modelcontextprotocol/protocolVersion":"${MODERN_PROTOCOL}","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"fluidmcp-bench","version":"1"}}`;

/**
 * A 2026-07-28 client: no `initialize` and no session, every request stands alone. Each POST carries
 * `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers and the version and capabilities in
 * `_meta`; it reuses one keep-alive connection, as an HTTP client does.
 */
export class ModernSession implements Session {
  private readonly conn: HttpConnection | AgentConnection;
  private readonly head: string;
  private nextId = 1;

  constructor(
    port: number,
    path: string,
    token: string | undefined,
    agent: Agent | undefined,
    private readonly tool = 'echo',
  ) {
    this.conn = agent ? new AgentConnection('127.0.0.1', port, agent) : new HttpConnection('127.0.0.1', port);
    const auth = token !== undefined ? `Authorization: Bearer ${token}\r\n` : '';
    this.head =
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${auth}` +
      `MCP-Protocol-Version: ${MODERN_PROTOCOL}\r\nMcp-Method: tools/call\r\nMcp-Name: ${tool}\r\n`;
  }

  /** Nothing to open: a modern client sends its requests directly. */
  async open(): Promise<void> {}

  /** One stateless `tools/call`; the answer must carry its id, echo its message and say `resultType: "complete"`. */
  async echo(message: string): Promise<void> {
    const id = this.nextId++;
    const answer = await this.conn.request(this.head, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${this.tool}","arguments":{"message":"${message}"},"_meta":${MODERN_META}}}`);
    if (answer.status !== 200) throw httpError(answer);
    const msgs = messagesOf(answer);
    const msg = msgs.find((m) => m.id === id) ?? msgs[msgs.length - 1]!;
    echoText(msg, id, message);
    const resultType = msg.result?.['resultType'];
    if (resultType !== 'complete') throw new Error(`the answer's resultType is ${JSON.stringify(resultType)}, "complete" expected`);
  }

  stream(): Promise<void> {
    return Promise.reject(new Error('the bench streams through legacy sessions only'));
  }

  /** Nothing to end: no session was opened. */
  async close(): Promise<void> {}

  destroy(reason?: string): void {
    this.conn.destroy(reason);
  }
}
