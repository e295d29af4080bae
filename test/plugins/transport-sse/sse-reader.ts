import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** A raw SSE response read over node:http: every event and comment as it arrives. */
export interface SseReading {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly events: EventSourceMessage[];
  readonly comments: string[];
  /** the raw text received so far */
  text: string;
  /** resolves when the server ends the response ('end') or the connection breaks ('error') */
  readonly finished: Promise<'end' | 'error'>;
  /** the client hangs up */
  close(): void;
}

export interface SseRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Opens `path` and resolves once the response head arrived (the stream stays open). */
export function openSse(port: number, path: string, spec: SseRequest = {}): Promise<SseReading> {
  return new Promise((resolve, reject) => {
    let req: ClientRequest | undefined = undefined;
    req = httpRequest(
      { host: '127.0.0.1', port, path, method: spec.method ?? 'GET', headers: { accept: 'text/event-stream', ...spec.headers }, agent: false },
      (res) => {
        const events: EventSourceMessage[] = [];
        const comments: string[] = [];
        const parser = createParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c.trim()) });
        let settle: (how: 'end' | 'error') => void = () => undefined;
        const finished = new Promise<'end' | 'error'>((r) => (settle = r));
        const reading: SseReading = {
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          comments,
          text: '',
          finished,
          close: () => req!.destroy(),
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          reading.text += chunk;
          parser.feed(chunk);
        });
        res.on('end', () => settle('end'));
        res.on('error', () => settle('error'));
        res.on('close', () => settle(res.complete ? 'end' : 'error'));
        resolve(reading);
      },
    );
    req.setTimeout(15_000, () => req!.destroy(new Error(`no answer to ${path} within 15 s`)));
    req.on('error', reject);
    req.end(spec.body);
  });
}

/** Reads a whole SSE (or other) response to its end. */
export async function readSse(port: number, path: string, spec: SseRequest = {}): Promise<SseReading> {
  const reading = await openSse(port, path, spec);
  await reading.finished;
  return reading;
}
