import type { ServerResponse } from 'node:http';
import type { EventBus, EventStream, EventStreamFactory, EventStreamOptions, Logger } from '../../core/index.js';

export interface EventStreamSettings {
  /** interval of the keep-alive comment, ms (0 turns it off) */
  keepAliveMs: number;
  /** bytes a stream may hold unsent before it is closed as a slow reader */
  maxBufferedBytes: number;
  log: Logger;
  /** where stream.opened and stream.closed go */
  events?: EventBus;
}

const SSE_HEAD = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

const LINE_BREAK = /\r\n|\r|\n/;
const NO_DATA: Record<string, never> = Object.freeze({});

/** One Server-Sent Events stream written to an HTTP response. */
export class ServerEventStream implements EventStream {
  private closedValue = false;
  private nextId = 1;
  private readonly listeners: (() => void)[] = [];
  private readonly keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly settings: EventStreamSettings,
    options: EventStreamOptions = {},
  ) {
    res.writeHead(options.status ?? 200, { ...SSE_HEAD, ...options.headers });
    res.flushHeaders();
    // a client going away ends the stream; 'close' also follows our own end()
    res.once('close', () => this.close('client disconnected'));
    if (settings.keepAliveMs > 0) {
      this.keepAlive = setInterval(() => this.comment('keep-alive'), settings.keepAliveMs);
      this.keepAlive.unref();
    }
  }

  get closed(): boolean {
    return this.closedValue;
  }

  send(data: string, event?: string): boolean {
    if (this.closedValue) return false;
    let text = `id: ${this.nextId++}\n`;
    if (event !== undefined) text += `event: ${event.replace(LINE_BREAK, ' ')}\n`;
    for (const line of data.split(LINE_BREAK)) text += `data: ${line}\n`;
    return this.write(`${text}\n`);
  }

  comment(text: string): void {
    if (this.closedValue) return;
    this.write(`: ${text.split(LINE_BREAK).join(' ')}\n\n`);
  }

  close(reason = 'closed by the gateway'): void {
    this.finish(reason, false);
  }

  onClose(listener: () => void): void {
    if (this.closedValue) queueMicrotask(listener);
    else this.listeners.push(listener);
  }

  private write(text: string): boolean {
    // judge the reader by what it left unread before this event: one large event is fine, a backlog is not
    const buffered = this.res.writableLength;
    if (buffered <= this.settings.maxBufferedBytes) {
      this.res.write(text);
      return true;
    }
    this.finish(`the client does not read fast enough: ${buffered} bytes wait to be sent, beyond the limit of ${this.settings.maxBufferedBytes}`, true);
    return false;
  }

  private finish(reason: string, slowReader: boolean): void {
    if (this.closedValue) return;
    this.closedValue = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    if (slowReader) {
      this.settings.log.warn({ reason }, 'event stream closed');
      // dropping the socket is the only way to free what is buffered for a reader that does not read
      this.res.destroy();
    } else {
      this.settings.log.debug({ reason }, 'event stream closed');
      if (!this.res.writableEnded) this.res.end();
    }
    for (const listener of this.listeners.splice(0)) {
      try {
        listener();
      } catch (err) {
        this.settings.log.error({ error: (err as Error).message }, 'event stream close listener failed');
      }
    }
  }
}

/** Opens event streams and remembers the open ones, so stop can end them all. */
export class EventStreamHub implements EventStreamFactory {
  private readonly streams = new Set<ServerEventStream>();

  constructor(private readonly settings: EventStreamSettings) {}

  open(res: ServerResponse, options?: EventStreamOptions): EventStream {
    const stream = new ServerEventStream(res, this.settings, options);
    this.streams.add(stream);
    const events = this.settings.events;
    events?.emit('stream.opened', NO_DATA);
    stream.onClose(() => {
      this.streams.delete(stream);
      events?.emit('stream.closed', NO_DATA);
    });
    return stream;
  }

  get size(): number {
    return this.streams.size;
  }

  closeAll(reason: string): void {
    for (const stream of [...this.streams]) stream.close(reason);
  }
}
