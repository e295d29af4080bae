import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';

/**
 * A small load driver for the reliability suite: keep-alive HTTP/1.1 over node:http, every call bounded,
 * every answer checked against its own request. It counts outcomes instead of throwing, so a test can
 * assert on the counts and print them.
 */

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Why a call got no HTTP answer: no answer within its bound, or the connection failed. */
export class CallFailure extends Error {
  constructor(
    readonly kind: 'hung' | 'network',
    message: string,
    /** true once the whole request was written (the gateway may have been working on it) */
    readonly sent: boolean,
  ) {
    super(message);
  }
}

export interface PostSpec {
  port: number;
  path: string;
  body: string;
  headers?: Record<string, string>;
  /** bound of the whole call, ms */
  timeoutMs: number;
  agent?: Agent;
  method?: string;
}

/** One bounded HTTP request; rejects with a CallFailure when no whole answer arrives. */
export function send(spec: PostSpec): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let sent = false;
    let settled = false;
    const fail = (kind: 'hung' | 'network', message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new CallFailure(kind, message, sent));
    };
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: spec.port,
        method: spec.method ?? 'POST',
        path: spec.path,
        agent: spec.agent ?? false,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'content-length': Buffer.byteLength(spec.body),
          ...spec.headers,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', (err) => fail('network', `answer cut: ${err.message}`));
        res.on('aborted', () => fail('network', 'answer cut: aborted'));
        res.on('end', () => {
          if (settled) return;
          if (!res.complete) {
            fail('network', 'answer cut before its end');
            return;
          }
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') });
        });
      },
    );
    const timer = setTimeout(() => {
      fail('hung', `no answer to ${spec.method ?? 'POST'} ${spec.path} within ${spec.timeoutMs} ms`);
      req.destroy();
    }, spec.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => fail('network', err.code ?? err.message));
    req.on('finish', () => (sent = true));
    req.end(spec.body);
  });
}

export type RpcMessage = { jsonrpc?: string; id?: unknown; method?: string; result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } };

/** The JSON-RPC messages of an answer: a JSON body, or the `data:` of each event of an SSE body. */
export function messagesOf(answer: HttpAnswer): RpcMessage[] {
  const type = String(answer.headers['content-type'] ?? '');
  if (type.startsWith('text/event-stream')) {
    const out: RpcMessage[] = [];
    for (const event of answer.text.split(/\r?\n\r?\n/)) {
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data !== '') out.push(JSON.parse(data) as RpcMessage);
    }
    return out;
  }
  const parsed = JSON.parse(answer.text) as RpcMessage | RpcMessage[];
  return Array.isArray(parsed) ? parsed : [parsed];
}

export type Outcome = 'ok' | 'rpc-error' | 'http-error' | 'wrong' | 'network' | 'hung';

export interface Tally {
  calls: number;
  counts: Record<Outcome, number>;
  /** network failures after the whole request was written: calls the gateway may have been working on */
  cutAfterSend: number;
  /** network failures by error code, e.g. ECONNREFUSED */
  networkCodes: Record<string, number>;
  /** the first few failures, for the assertion message */
  samples: string[];
}

export function newTally(): Tally {
  return { calls: 0, counts: { ok: 0, 'rpc-error': 0, 'http-error': 0, wrong: 0, network: 0, hung: 0 }, cutAfterSend: 0, networkCodes: {}, samples: [] };
}

export function record(tally: Tally, outcome: Outcome, detail?: string): void {
  tally.calls++;
  tally.counts[outcome]++;
  if (outcome !== 'ok' && detail !== undefined && tally.samples.length < 8) tally.samples.push(`${outcome}: ${detail.length > 240 ? `${detail.slice(0, 240)}…` : detail}`);
}

export function describeTally(tally: Tally): string {
  const parts = (Object.entries(tally.counts) as [Outcome, number][]).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  if (tally.counts.network > 0) parts.push(`network by cause: ${Object.entries(tally.networkCodes).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (tally.cutAfterSend > 0) parts.push(`of which cut after the request was sent ${tally.cutAfterSend}`);
  return `${tally.calls} calls (${parts.join(', ') || 'none'})${tally.samples.length > 0 ? `; first failures: ${tally.samples.join(' | ')}` : ''}`;
}

/** A payload no other call carries. */
export const uniquePayload = (client: number, seq: number): string => `c${client}-s${seq}-${randomBytes(6).toString('hex')}`;

export const echoCall = (id: number | string, message: string): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });

/**
 * Checks the answer to an echo call: its own id and its own payload back. A JSON-RPC error with the
 * call's id is 'rpc-error'; anything else is 'wrong' or 'http-error'.
 */
export function judgeEcho(answer: HttpAnswer, id: number | string, message: string): { outcome: Outcome; detail?: string } {
  if (answer.status !== 200) return { outcome: 'http-error', detail: `HTTP ${answer.status}: ${answer.text.slice(0, 200)}` };
  let messages: RpcMessage[];
  try {
    messages = messagesOf(answer);
  } catch {
    return { outcome: 'wrong', detail: `not JSON: ${answer.text.slice(0, 200)}` };
  }
  const response = messages.find((m) => m.method === undefined);
  if (!response) return { outcome: 'wrong', detail: `no response in ${answer.text.slice(0, 200)}` };
  if (response.id !== id) return { outcome: 'wrong', detail: `id ${JSON.stringify(response.id)} instead of ${JSON.stringify(id)}` };
  if (response.error) return { outcome: 'rpc-error', detail: `${response.error.code} ${response.error.message}` };
  const content = (response.result?.content as { text?: string }[] | undefined)?.[0]?.text;
  if (content !== `Echo: ${message}`) return { outcome: 'wrong', detail: `payload ${JSON.stringify(content)?.slice(0, 100)} instead of "Echo: ${message}"` };
  return { outcome: 'ok' };
}

/** A Streamable HTTP session: initialize, then notifications/initialized. Returns its headers for calls. */
export async function openSession(port: number, path: string, agent: Agent | undefined, timeoutMs: number, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const init = await send({
    port,
    path,
    agent,
    timeoutMs,
    headers: extra,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'reliability', version: '1.0.0' } } }),
  });
  const id = init.headers['mcp-session-id'];
  if (init.status !== 200 || typeof id !== 'string') throw new Error(`initialize failed: HTTP ${init.status} ${init.text.slice(0, 300)}`);
  const headers = { ...extra, 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' };
  const note = await send({ port, path, agent, timeoutMs, headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  if (note.status !== 202) throw new Error(`notifications/initialized got HTTP ${note.status}`);
  return headers;
}

export interface EchoLoadOptions {
  port: number;
  path: string;
  clients: number;
  /** the load runs until this resolves */
  until: Promise<unknown>;
  /** bound of each call, ms */
  timeoutMs: number;
  /** even clients open a Streamable HTTP session first; odd ones send bare calls (default true) */
  mixSessions?: boolean;
  /** headers for client number i (for example its Bearer token) */
  headersFor?: (client: number) => Record<string, string>;
  /** called after every call, with its outcome */
  onCall?: (outcome: Outcome) => void;
}

/**
 * N clients, each calling echo in a loop with its own payload until `until` settles. Ids start at 1 in
 * every client, so the gateway must keep clients apart. A client whose session cannot open keeps
 * trying bare calls: the failure is counted, never thrown.
 */
export async function echoLoad(options: EchoLoadOptions): Promise<Tally> {
  const tally = newTally();
  const agent = new Agent({ keepAlive: true, maxSockets: options.clients });
  let running = true;
  void options.until.finally(() => (running = false));
  const client = async (n: number): Promise<void> => {
    let headers = options.headersFor?.(n) ?? {};
    if ((options.mixSessions ?? true) && n % 2 === 0) {
      try {
        headers = await openSession(options.port, options.path, agent, options.timeoutMs, headers);
      } catch (err) {
        record(tally, err instanceof CallFailure ? err.kind : 'wrong', `session of client ${n}: ${(err as Error).message}`);
      }
    }
    for (let seq = 1; running; seq++) {
      const message = uniquePayload(n, seq);
      let outcome: Outcome;
      let detail: string | undefined;
      try {
        const answer = await send({ port: options.port, path: options.path, agent, timeoutMs: options.timeoutMs, headers, body: echoCall(seq, message) });
        ({ outcome, detail } = judgeEcho(answer, seq, message));
      } catch (err) {
        outcome = err instanceof CallFailure ? err.kind : 'wrong';
        detail = (err as Error).message;
        if (err instanceof CallFailure && err.kind === 'network') tally.networkCodes[err.message] = (tally.networkCodes[err.message] ?? 0) + 1;
        if (err instanceof CallFailure && err.kind === 'network' && err.sent) {
          tally.cutAfterSend++;
          detail += ' (after the request was sent)';
        }
        // a broken connection is not retried at once in a tight loop
        await new Promise((r) => setTimeout(r, 20));
      }
      record(tally, outcome, `client ${n}: ${detail}`);
      options.onCall?.(outcome);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.clients }, (_, n) => client(n)));
  } finally {
    agent.destroy();
  }
  return tally;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
