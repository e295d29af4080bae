import { request as httpRequest } from 'node:http';
import { send, messagesOf, uniquePayload, echoCall, judgeEcho } from './load-driver.js';

export interface ServerHealth {
  state?: string;
  ready?: boolean;
  inFlight?: number;
  pid?: number;
  restarts?: number;
  lastError?: string;
  instances?: number;
  sessions?: number;
}

/** GET /health, bounded. */
export async function health(port: number): Promise<{ status: string; servers: Record<string, ServerHealth> }> {
  const answer = await send({ port, path: '/health', method: 'GET', body: '', timeoutMs: 5000 });
  if (answer.status !== 200) throw new Error(`/health answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  return JSON.parse(answer.text) as { status: string; servers: Record<string, ServerHealth> };
}

/** Polls /health until `check` holds for the server; fails with the last entry after `ms`. */
export async function waitForHealth(port: number, server: string, check: (h: ServerHealth) => boolean, ms: number, what: string): Promise<ServerHealth> {
  const deadline = Date.now() + ms;
  let last: ServerHealth | undefined;
  for (;;) {
    last = (await health(port)).servers[server];
    if (last && check(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms; /health says ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * One echo call with a payload of its own; throws unless its own payload comes back. Proves the
 * gateway still serves normal calls.
 */
export async function echoOnce(port: number, server: string, headers: Record<string, string> = {}, tag = 'probe'): Promise<void> {
  const message = uniquePayload(0, Date.now()) + tag;
  const id = `${tag}-${message}`;
  const answer = await send({ port, path: `/${server}/mcp`, body: echoCall(id, message), headers, timeoutMs: 10_000 });
  const verdict = judgeEcho(answer, id, message);
  if (verdict.outcome !== 'ok') throw new Error(`the gateway does not serve ${server} normally any more: ${verdict.outcome} ${verdict.detail}`);
}

/** A JSON-RPC call answered by POST /<server>/sse: the messages of its stream, bounded. */
export async function streamedCall(port: number, server: string, message: Record<string, unknown>, timeoutMs = 10_000): Promise<ReturnType<typeof messagesOf>> {
  const answer = await send({ port, path: `/${server}/sse`, body: JSON.stringify(message), timeoutMs });
  if (answer.status !== 200) throw new Error(`POST /${server}/sse answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  return messagesOf(answer);
}

/**
 * Starts a request, waits until `cutWhen` sees the answer so far (or `afterMs` passes with no answer),
 * then destroys the socket as a client that goes away would. Resolves with what was received.
 */
export function dropMidway(
  port: number,
  spec: { method?: string; path: string; body?: string; headers?: Record<string, string>; partialBody?: boolean },
  cutWhen: { afterMs?: number; received?: RegExp },
  boundMs = 10_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const body = spec.body ?? '';
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: spec.method ?? 'POST',
      path: spec.path,
      agent: false,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), ...spec.headers },
    });
    const bound = setTimeout(() => {
      req.destroy();
      reject(new Error(`${spec.path}: the cut condition ${String(cutWhen.received)} never held within ${boundMs} ms; received ${JSON.stringify(received.slice(0, 300))}`));
    }, boundMs);
    const cut = (): void => {
      clearTimeout(bound);
      req.destroy();
      resolve(received);
    };
    req.on('error', () => undefined);
    req.on('response', (res) => {
      res.on('error', () => undefined);
      res.setEncoding('utf8').on('data', (s: string) => {
        received += s;
        if (cutWhen.received?.test(received)) cut();
      });
      res.on('end', () => {
        clearTimeout(bound);
        reject(new Error(`${spec.path}: the answer ended before the client could drop it: ${received.slice(0, 300)}`));
      });
    });
    if (spec.partialBody) {
      req.write(body.slice(0, Math.max(1, Math.floor(body.length / 3))));
    } else {
      req.end(body);
    }
    if (cutWhen.afterMs !== undefined) setTimeout(cut, cutWhen.afterMs);
  });
}
