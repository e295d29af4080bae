import { connect } from 'node:net';

/** An HTTP answer read off the wire: every header line as sent, so injected headers show. */
export interface RawAnswer {
  status: number;
  /** header lines in order, names lower-cased */
  headerLines: [string, string][];
  /** the first value of each header */
  headers: Record<string, string>;
  body: string;
  /** the bytes before the body, as sent */
  head: string;
}

export interface RawRequest {
  method?: string;
  /** the request target exactly as written on the request line, no encoding applied (default "/") */
  target?: string;
  /** header lines; Host and Connection: close are added unless given (a null value leaves one out) */
  headers?: Record<string, string | null>;
  body?: string | Buffer;
  /** body pieces sent with Transfer-Encoding: chunked */
  chunks?: (string | Buffer)[];
  /** the whole request, byte for byte, instead of building it */
  raw?: string | Buffer;
  /** ms (default 10 s) */
  timeoutMs?: number;
}

/**
 * Sends one HTTP/1.1 request over a plain socket, as malformed as the test wants, and reads the answer
 * until the server closes the connection. Rejects when no complete answer arrives within the bound.
 */
export function rawRequest(port: number, spec: RawRequest): Promise<RawAnswer> {
  const bytes = spec.raw !== undefined ? Buffer.from(spec.raw) : build(port, spec);
  const timeoutMs = spec.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const data = Buffer.concat(parts);
      const answer = data.length > 0 ? parse(data, true) : undefined;
      if (answer) resolve(answer);
      else reject(err ?? new Error(`the server closed the connection without an answer to ${describe(spec)}`));
    };
    const timer = setTimeout(() => finish(new Error(`no complete answer to ${describe(spec)} within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(parts).toString('latin1').slice(0, 300))}`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      // a server that keeps the connection open after a complete answer is done with this request too
      if (parse(Buffer.concat(parts), false)) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    // the server may answer (413, 400) and close before the whole request is written
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => {
      if (spec.chunks !== undefined && spec.raw === undefined) {
        socket.write(bytes);
        for (const chunk of spec.chunks) {
          const b = Buffer.from(chunk);
          if (b.length === 0) continue;
          socket.write(`${b.length.toString(16)}\r\n`);
          socket.write(b);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      } else {
        socket.write(bytes);
      }
    });
  });
}

function describe(spec: RawRequest): string {
  if (spec.raw !== undefined) return JSON.stringify(Buffer.from(spec.raw).toString('latin1').slice(0, 80));
  return `${spec.method ?? 'GET'} ${(spec.target ?? '/').slice(0, 80)}`;
}

function build(port: number, spec: RawRequest): Buffer {
  const headers: Record<string, string | null> = { host: `127.0.0.1:${port}`, connection: 'close', ...spec.headers };
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body);
  if (spec.chunks !== undefined) headers['transfer-encoding'] ??= 'chunked';
  else if (body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')) headers['content-length'] = String(body.length);
  let head = `${spec.method ?? 'GET'} ${spec.target ?? '/'} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) if (value !== null) head += `${name}: ${value}\r\n`;
  head += '\r\n';
  return body === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A complete answer in `data`, or undefined while it is still arriving. */
function parse(data: Buffer, closed: boolean): RawAnswer | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = data.subarray(0, end).toString('latin1');
  const [statusLine, ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  if (!Number.isFinite(status)) return undefined;
  const headerLines = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of headerLines) headers[name] ??= value;
  let rest = data.subarray(end + 4);
  let body: Buffer;
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const pieces: Buffer[] = [];
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      if (lineEnd === -1) return undefined;
      const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16);
      if (!Number.isFinite(size)) return undefined;
      if (size === 0) break;
      if (rest.length < lineEnd + 2 + size + 2) return undefined;
      pieces.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      rest = rest.subarray(lineEnd + 2 + size + 2);
    }
    body = Buffer.concat(pieces);
  } else if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (rest.length < length) return undefined;
    body = rest.subarray(0, length);
  } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    body = Buffer.alloc(0);
  } else if (closed) {
    // no length: the body runs to the end of the connection
    body = rest;
  } else {
    return undefined;
  }
  return { status, headerLines, headers, body: body.toString('utf8'), head };
}
