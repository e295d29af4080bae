import { maxHeaderSize, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { checkCodings, decodeBody, where } from './content-coding.js';
import { errors, FluidError, sizeText } from './errors.js';

const HTML_SIGNIFICANT = /[<>&]/;
const HTML_SIGNIFICANT_ALL = /[<>&]/g;
const JSON_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026' };

/**
 * JSON text with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026`: the same value to any JSON
 * parser, but text that came from a request or a provider can never be read as markup. A string is
 * taken as JSON text already (those characters occur only inside its strings, where the escape is valid).
 */
export function jsonText(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return HTML_SIGNIFICANT.test(text) ? text.replace(HTML_SIGNIFICANT_ALL, (c) => JSON_ESCAPES[c]!) : text;
}

/** Sends a JSON body (escaped by jsonText). The body is serialized once; Content-Length is always set. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = jsonText(body);
  const head: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  if (headers) Object.assign(head, headers);
  res.writeHead(status, head);
  res.end(text);
}

/** The JSON error body every core error uses: `{ "error": { "code", "message" } }`. */
export function sendError(res: ServerResponse, error: FluidError, headers?: Record<string, string>): void {
  sendJson(res, error.statusCode, { error: { code: error.code, message: error.message } }, headers);
}

/**
 * The whole answer, status line to body, to a request node:http could not parse (its `clientError`):
 * a JSON error like every other, and `connection: close`, since the connection cannot be read further.
 */
export function clientErrorAnswer(err: NodeJS.ErrnoException, server: Pick<Server, 'headersTimeout' | 'requestTimeout'>): string {
  const [status, error] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? ['431 Request Header Fields Too Large', errors.FMCP_ERR_HEADERS_TOO_LARGE(sizeText(maxHeaderSize))]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['408 Request Timeout', errors.FMCP_ERR_REQUEST_TIMEOUT(server.headersTimeout / 1000, server.requestTimeout / 1000)]
        : ['400 Bad Request', errors.FMCP_ERR_BAD_HTTP([err.code, (err as { reason?: string }).reason].filter(Boolean).join(': ') || err.message)];
  const body = jsonText({ error: { code: error.code, message: error.message } });
  return (
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `connection: close\r\nx-content-type-options: nosniff\r\n\r\n${body}`
  );
}

/**
 * Reads the whole body, refusing more than `limit` bytes (413) and a client that goes away. A body with a
 * Content-Encoding is decoded (gzip, deflate, br; `limit` holds for the decoded size too), any other
 * coding is 415: see content-coding.ts.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (req.headers['content-encoding'] === undefined) return readRawBody(req, limit);
  const refused = checkCodings(req);
  if (refused) return Promise.reject(refused);
  return readRawBody(req, limit).then((body) => decodeBody(req, body, limit));
}

function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(errors.FMCP_ERR_BODY_TOO_LARGE(where(req), sizeText(limit)));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume();
        reject(errors.FMCP_ERR_BODY_TOO_LARGE(where(req), sizeText(limit)));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onAbort = (): void => {
      cleanup();
      reject(errors.FMCP_ERR_BODY_ABORTED());
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onClose);
    };
    const onClose = (): void => {
      if (!req.complete) onAbort();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onClose);
  });
}

/**
 * Reads and discards what is left of a request body, up to `limit` bytes or `ms`: a client still writing
 * (a 413 answered before the body ended) must be able to finish writing and read the answer, which it
 * cannot once the socket closed under it (EPIPE, reset). A client that sends nothing for `idleMs` is not
 * writing any more. Resolves true when the body ended.
 */
export function discardBody(req: IncomingMessage, limit: number, ms: number, idleMs = 500): Promise<boolean> {
  if (req.complete || req.destroyed) return Promise.resolve(req.complete);
  return new Promise((resolve) => {
    let seen = 0;
    // a client that declared a body it does not send is not writing: answer it once it goes quiet
    let idle = setTimeout(() => finish(false), idleMs);
    const finish = (ended: boolean): void => {
      clearTimeout(timer);
      clearTimeout(idle);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      resolve(ended);
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > limit) return finish(false);
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    const onEnd = (): void => finish(true);
    const onClose = (): void => finish(req.complete);
    const timer = setTimeout(() => finish(false), ms);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
    req.resume();
  });
}
