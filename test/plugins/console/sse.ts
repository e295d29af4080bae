import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';

export interface SseEvent {
  event: string;
  data: string;
}

/** A server-sent event stream read with node:http and eventsource-parser; `next()` waits for a match. */
export class SseReader {
  readonly events: SseEvent[] = [];
  private res: IncomingMessage | undefined;
  private readonly opened: Promise<IncomingMessage>;
  private closeRequest: (() => void) | undefined;

  constructor(port: number, path: string, headers: Record<string, string> = {}) {
    this.opened = new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
        this.res = res;
        const parser = createParser({ onEvent: (e) => this.events.push({ event: e.event ?? 'message', data: e.data }) });
        res.setEncoding('utf8').on('data', (chunk: string) => parser.feed(chunk));
        resolve(res);
      });
      req.on('error', reject);
      req.end();
      this.closeRequest = () => req.destroy();
    });
  }

  async status(): Promise<number> {
    return (await this.opened).statusCode ?? 0;
  }

  get headers(): IncomingMessage['headers'] | undefined {
    return this.res?.headers;
  }

  /** The first event at index `from` or later that matches; fails after `ms`. */
  async next(match: (e: SseEvent) => boolean, ms = 10_000, what = 'an event', from = 0): Promise<SseEvent> {
    await this.opened;
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`${what} did not arrive within ${ms} ms; got ${JSON.stringify(this.events.slice(-10))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.closeRequest?.();
  }
}
