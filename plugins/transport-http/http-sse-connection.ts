import type { Dispatcher } from 'undici';
import type { JsonObject } from '../../core/index.js';
import { request } from './undici.js';
import { headerValue, parseJson, readEvents, readText, TransportFailure } from './http-body.js';
import type { RemoteSettings } from './settings.js';

/**
 * One connection of the 2024-11-05 HTTP+SSE transport: a GET event stream whose `endpoint` event names
 * where to POST; the session lives as long as the stream.
 */
export class HttpSseConnection {
  /** where messages are POSTed, once the `endpoint` event came */
  endpoint: URL | undefined;
  private readonly stream = new AbortController();

  constructor(
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly agent: () => Promise<Dispatcher>,
    private readonly settings: RemoteSettings,
  ) {}

  get closed(): boolean {
    return this.stream.signal.aborted;
  }

  close(): void {
    this.stream.abort();
  }

  /**
   * Opens the stream; resolves once the `endpoint` event came. Messages on the stream go to `onMessage`;
   * `onBroken` hears a break of the stream after it was open (not after close()).
   */
  open(onMessage: (message: JsonObject) => void, onBroken: (err: Error) => void): Promise<void> {
    const ac = this.stream;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          ac.abort();
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(() => settle(new TransportFailure(`no endpoint event within ${this.settings.endpointTimeoutMs} ms`)), this.settings.endpointTimeoutMs);
      const run = async (): Promise<void> => {
        const res = await request(this.url, {
          dispatcher: await this.agent(),
          method: 'GET',
          headers: { ...this.headers, accept: 'text/event-stream' },
          signal: ac.signal,
          headersTimeout: this.settings.headersTimeoutMs,
          bodyTimeout: 0,
        });
        const type = headerValue(res.headers['content-type']) ?? '';
        if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
          await res.body.dump().catch(() => undefined);
          throw new TransportFailure(`GET answered HTTP ${res.statusCode}${type ? ` (${type})` : ''}, not an event stream`);
        }
        await readEvents(res.body, this.settings.maxMessageBytes, (event) => {
          if (event.event === 'endpoint') {
            const endpoint = new URL(event.data.trim(), this.url);
            if (endpoint.origin !== this.url.origin) {
              settle(new TransportFailure(`the endpoint ${endpoint.origin} is on another origin than ${this.url.origin}; refused`));
              return;
            }
            this.endpoint = endpoint;
            settle();
            return;
          }
          if (event.event !== undefined && event.event !== 'message') return;
          const message = parseJson(event.data);
          if (message) onMessage(message);
        });
        throw new TransportFailure('the server closed the event stream');
      };
      run().catch((err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        if (!settled) {
          settle(error);
          return;
        }
        if (!ac.signal.aborted) onBroken(error);
      });
    });
  }

  /** POSTs one message to the endpoint; resolves with the status and (up to 64 KiB of) the body. */
  async post(body: string, signal: AbortSignal): Promise<{ status: number; text: string }> {
    const res = await request(this.endpoint!, {
      dispatcher: await this.agent(),
      method: 'POST',
      headers: { ...this.headers, 'content-type': 'application/json' },
      body,
      signal,
      headersTimeout: this.settings.headersTimeoutMs,
      bodyTimeout: this.settings.headersTimeoutMs,
    });
    const text = await readText(res.body, 64 * 1024).catch(() => '');
    return { status: res.statusCode, text };
  }
}
