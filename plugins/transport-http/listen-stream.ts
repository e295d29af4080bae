import type { Dispatcher } from 'undici';
import type { JsonObject, Logger } from '../../core/index.js';
import { request } from './undici.js';
import { backoff, describe, headerValue, parseJson, readEvents } from './http-body.js';
import type { RemoteSettings } from './settings.js';

export interface ListenEvents {
  /** a message the server sent on the stream */
  message(message: JsonObject): void;
  /** the server cannot be reached */
  lost(err: Error): void;
  /** the server answered that it no longer knows the session */
  sessionLost(err: Error): void;
  /** the stream stopped for good on its own (refused, or failed): a new one may be opened */
  ended(): void;
}

/**
 * The server-to-client stream of one Streamable HTTP session: a GET that the server may hold open to
 * send requests and notifications outside any call. Reopened with backoff when it drops, resuming with
 * `Last-Event-ID`; a server without one (405) is fine. Lives as long as its session: `close()` ends it.
 */
export class ListenStream {
  private readonly ac = new AbortController();
  private retries = 0;
  private lastEventId: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: URL,
    private readonly agent: () => Promise<Dispatcher>,
    private readonly settings: RemoteSettings,
    private readonly log: Logger,
    /** the session's headers, read at each (re)opening */
    private readonly headers: () => Record<string, string>,
    private readonly events: ListenEvents,
  ) {}

  get closed(): boolean {
    return this.ac.signal.aborted;
  }

  close(): void {
    clearTimeout(this.timer);
    this.ac.abort();
  }

  async open(): Promise<void> {
    if (this.closed) return;
    const headers: Record<string, string> = { ...this.headers(), accept: 'text/event-stream' };
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.url, { dispatcher: await this.agent(), method: 'GET', headers, signal: this.ac.signal, headersTimeout: this.settings.headersTimeoutMs, bodyTimeout: 0 });
    } catch (err) {
      if (this.closed) return;
      this.close();
      this.events.ended();
      this.events.lost(err as Error);
      return;
    }
    const status = res.statusCode;
    const type = headerValue(res.headers['content-type']) ?? '';
    if (status !== 200 || !type.startsWith('text/event-stream')) {
      await res.body.dump().catch(() => undefined);
      this.close();
      this.events.ended();
      if (status === 405) this.log.debug('the remote server offers no server-to-client stream (GET answered 405)');
      else if (status === 404 || status === 400) this.events.sessionLost(new Error(`the remote server ${this.url.href} ended the session (GET answered HTTP ${status})`));
      else this.log.warn({ status }, 'the remote server refused the server-to-client stream; server requests and notifications outside calls will not arrive');
      return;
    }
    let failure: unknown;
    try {
      await readEvents(res.body, this.settings.maxMessageBytes, (event) => {
        if (event.id !== undefined) this.lastEventId = event.id;
        this.retries = 0;
        if (event.event !== undefined && event.event !== 'message') return;
        const message = parseJson(event.data);
        if (message) this.events.message(message);
      });
    } catch (err) {
      failure = err;
    }
    if (this.closed) return;
    // the stream dropped: the server may only have closed it, so reopen it before declaring a loss
    const delay = backoff(this.settings.reconnect, this.retries++);
    this.log.debug({ error: failure ? describe(failure) : 'ended', delay }, 'server-to-client stream dropped; reopening');
    this.timer = setTimeout(() => void this.open(), delay);
  }
}
