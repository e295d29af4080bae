import type { Readable } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Dispatcher } from 'undici';
import type { JsonObject } from '../../core/index.js';
import type { ReconnectSettings } from './settings.js';

/** A failure of the HTTP exchange itself (not of the server's JSON-RPC answer). */
export class TransportFailure extends Error {}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isRequest = (m: JsonObject): boolean => typeof m.method === 'string' && m.id !== undefined && m.id !== null;
/** A message that answers `sent` (a request): its id, and no method of its own. */
export const isResponseTo = (sent: JsonObject, m: JsonObject): boolean => m.id === sent.id && m.method === undefined && (m.result !== undefined || m.error !== undefined);
export const headerValue = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export function parseJson(text: string): JsonObject | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

/** The most telling message of an undici or network error (the cause holds ECONNREFUSED and the like). */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  const code = (err as NodeJS.ErrnoException).code;
  if (cause instanceof Error && cause.message && cause.message !== err.message) return `${err.message}: ${cause.message}`;
  if (err instanceof AggregateError && err.errors.length > 0) return describe(err.errors[0]);
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message || code || 'unknown error';
}

export function backoff(settings: ReconnectSettings, attempt: number): number {
  const base = Math.min(settings.maxDelayMs, settings.initialDelayMs * 2 ** Math.min(attempt, 20));
  // jitter keeps many upstreams from reconnecting in step
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export async function readText(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      throw new TransportFailure(`the answer is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** Feeds an SSE body through eventsource-parser; resolves at its end, rejects if it breaks. */
export async function readEvents(body: Readable, maxBytes: number, onEvent: (event: EventSourceMessage) => void): Promise<void> {
  let failure: Error | undefined;
  const parser = createParser({
    onEvent,
    maxBufferSize: maxBytes,
    onError: (err) => {
      if (err.type === 'max-buffer-size-exceeded') failure = new TransportFailure(`an event is larger than ${maxBytes} characters`);
    },
  });
  // undici's body ignores setEncoding: decode here, keeping characters cut between chunks whole
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
    if (failure) {
      body.destroy();
      throw failure;
    }
  }
}

/**
 * Reads a 2xx answer to a POST: nothing (202), JSON, or an SSE stream that carries the response; every
 * message goes to `deliver`. Resolves with why a request got no response, or undefined when it did (or
 * was not a request); throws a TransportFailure when the body is not JSON.
 */
export async function readPostAnswer(res: Dispatcher.ResponseData, sent: JsonObject, maxBytes: number, deliver: (message: JsonObject) => void): Promise<string | undefined> {
  const type = headerValue(res.headers['content-type']) ?? '';
  if (type.startsWith('text/event-stream')) {
    let answered = false;
    try {
      await readEvents(res.body, maxBytes, (event) => {
        if (event.event !== undefined && event.event !== 'message') return;
        const message = parseJson(event.data);
        if (!message) return;
        if (isRequest(sent) && isResponseTo(sent, message)) answered = true;
        deliver(message);
      });
    } catch (err) {
      return answered ? undefined : `the answer stream broke before the response: ${describe(err)}`;
    }
    return answered ? undefined : 'the server closed the answer stream before sending the response';
  }
  const text = await readText(res.body, maxBytes);
  if (text.trim() === '') return isRequest(sent) ? `the server answered HTTP ${res.statusCode} without a response` : undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TransportFailure(`the answer is not JSON: ${snippet(text)}`);
  }
  const messages = (Array.isArray(parsed) ? parsed : [parsed]).filter(isObject);
  for (const message of messages) deliver(message);
  // JSON that answers nothing (a health page, another API) would leave the request waiting for its timeout
  if (!isRequest(sent) || messages.some((m) => isResponseTo(sent, m))) return undefined;
  return `the URL did not answer ${String(sent.method)} with a JSON-RPC response; it answered HTTP ${res.statusCode}: ${snippet(text)}`;
}
