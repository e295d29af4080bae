import { connect, type Socket } from 'node:net';

/** One HTTP/1.1 answer, its body decoded as UTF-8. Header names are lower case. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface Parsed {
  answer: HttpAnswer;
  consumed: number;
  close: boolean;
}

const CRLF2 = Buffer.from('\r\n\r\n');

function parseHead(buf: Buffer, end: number): { status: number; headers: Record<string, string> } {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const status = Number(lines[0]!.slice(9, 12));
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

/** Decodes a chunked body starting at `from`; undefined until the last chunk has arrived. */
function parseChunked(buf: Buffer, from: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let pos = from;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
    if (lineEnd < 0) return undefined;
    const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size line "${buf.toString('latin1', pos, Math.min(lineEnd, pos + 20))}"`);
    if (size === 0) {
      // no trailers expected: "0\r\n\r\n"; tolerate them by looking for the blank line
      const blank = buf.indexOf(CRLF2, lineEnd);
      if (buf.length >= lineEnd + 4 && buf[lineEnd + 2] === 13 && buf[lineEnd + 3] === 10) return { body: Buffer.concat(parts), end: lineEnd + 4 };
      if (blank < 0) return undefined;
      return { body: Buffer.concat(parts), end: blank + 4 };
    }
    const dataStart = lineEnd + 2;
    if (buf.length < dataStart + size + 2) return undefined;
    parts.push(buf.subarray(dataStart, dataStart + size));
    pos = dataStart + size + 2;
  }
}

function parseResponse(buf: Buffer, ended: boolean): Parsed | undefined {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd < 0) return undefined;
  const { status, headers } = parseHead(buf, headEnd);
  const bodyStart = headEnd + 4;
  const close = (headers['connection'] ?? '').toLowerCase() === 'close';
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { answer: { status, headers, body: '' }, consumed: bodyStart, close };
  }
  const length = headers['content-length'];
  if (length !== undefined) {
    const end = bodyStart + Number(length);
    if (buf.length < end) return undefined;
    return { answer: { status, headers, body: buf.toString('utf8', bodyStart, end) }, consumed: end, close };
  }
  if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
    const chunked = parseChunked(buf, bodyStart);
    if (!chunked) return undefined;
    return { answer: { status, headers, body: chunked.body.toString('utf8') }, consumed: chunked.end, close };
  }
  if (!ended) return undefined;
  return { answer: { status, headers, body: buf.toString('utf8', bodyStart) }, consumed: buf.length, close: true };
}

/**
 * A keep-alive HTTP/1.1 connection with one request at a time and a minimal parser: the load driver
 * must stay cheap next to the targets it measures on a 2-core machine.
 */
export class HttpConnection {
  private socket: Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private pending: { resolve: (a: HttpAnswer) => void; reject: (e: Error) => void } | undefined;
  private destroyed = false;

  constructor(readonly host: string, readonly port: number) {}

  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.drain(false);
    });
    socket.on('end', () => this.drain(true));
    socket.on('error', (err) => this.fail(socket, err));
    socket.on('close', () => this.fail(socket, new Error('connection closed by the server before the answer')));
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    return socket;
  }

  private fail(socket: Socket, err: Error): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }

  private drain(ended: boolean): void {
    if (!this.pending) return;
    let parsed: Parsed | undefined;
    try {
      parsed = parseResponse(this.buf, ended);
    } catch (err) {
      this.socket?.destroy();
      this.fail(this.socket!, err as Error);
      return;
    }
    if (!parsed) {
      if (ended) this.fail(this.socket!, new Error('connection ended in the middle of an answer'));
      return;
    }
    this.buf = this.buf.subarray(parsed.consumed);
    const pending = this.pending;
    this.pending = undefined;
    if (parsed.close || ended) {
      const socket = this.socket;
      this.socket = undefined;
      socket?.destroy();
    }
    pending.resolve(parsed.answer);
  }

  /** Sends a pre-serialized request (head without Content-Length, and body) and resolves with the answer. */
  request(head: string, body: string): Promise<HttpAnswer> {
    if (this.destroyed) return Promise.reject(new Error('connection stopped by the bench'));
    if (this.pending) return Promise.reject(new Error('bench bug: a second request on a busy connection'));
    const socket = this.socket ?? this.open();
    return new Promise<HttpAnswer>((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(`${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  }

  /** Ends the connection; a request still waiting fails with `reason`. */
  destroy(reason = 'connection stopped by the bench'): void {
    this.destroyed = true;
    const socket = this.socket;
    if (socket) {
      this.fail(socket, new Error(reason));
      socket.destroy();
    }
  }
}
