import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { brotliDecompress, constants, gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib';
import { errors, sizeText, type FluidError } from './errors.js';

/*
 * Request bodies with a Content-Encoding (RFC 9110 §8.4) are decoded rather than refused: clients behind
 * compressing proxies send gzip, and a JSON-RPC call that arrives compressed is the same call. Safe against
 * zip bombs because every step decodes with zlib's `maxOutputLength` set to the route's body limit: zlib
 * stops as soon as the output passes it (no more than the limit is ever held), and the compressed body was
 * already held to the same limit. Anything but gzip, deflate, br and identity is 415 with Accept-Encoding.
 */

const decode = (fn: (buf: Buffer, options: ZlibOptions, cb: (err: Error | null, out: Buffer) => void) => void) =>
  promisify(fn) as (buf: Buffer, options: ZlibOptions) => Promise<Buffer>;

const gunzipAsync = decode(gunzip);
const inflateAsync = decode(inflate);
const inflateRawAsync = decode(inflateRaw);
const brotliAsync = decode(brotliDecompress as typeof gunzip);

/** The codings a request body may carry, as the 415's Accept-Encoding names them. */
export const ACCEPTED_CODINGS = 'gzip, deflate, br';
/** More codings than this on one body is refused: nobody stacks them, and each step costs a pass. */
const MAX_CODINGS = 3;

/** Where a request went, for error messages: its method and path, never the query (it may carry ids). */
export const where = (req: IncomingMessage): string => `${req.method ?? 'POST'} ${(req.url ?? '/').split('?', 1)[0]}`;

/** The codings of Content-Encoding in the order they were applied, identity left out. */
function codingsOf(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(',') : header;
  return text
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

function unsupported(req: IncomingMessage, coding: string): FluidError {
  return Object.assign(errors.FMCP_ERR_UNSUPPORTED_ENCODING(where(req), coding), { headers: { 'accept-encoding': ACCEPTED_CODINGS } });
}

/** Refuses a Content-Encoding the gateway cannot decode before any of the body is read. */
export function checkCodings(req: IncomingMessage): FluidError | undefined {
  const codings = codingsOf(req.headers['content-encoding']);
  if (codings.length > MAX_CODINGS) return unsupported(req, codings.join(', '));
  const bad = codings.find((c) => c !== 'gzip' && c !== 'x-gzip' && c !== 'deflate' && c !== 'br');
  return bad === undefined ? undefined : unsupported(req, bad);
}

/** The body as the client meant it: its codings undone, last applied first, each held to `limit` bytes. */
export async function decodeBody(req: IncomingMessage, body: Buffer, limit: number): Promise<Buffer> {
  const codings = codingsOf(req.headers['content-encoding']);
  let out = body;
  for (const coding of codings.reverse()) {
    const options: ZlibOptions = { maxOutputLength: limit };
    try {
      if (coding === 'br') out = await brotliAsync(out, options);
      else if (coding === 'deflate') out = await inflateDeflate(out, options);
      else out = await gunzipAsync(out, options);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw errors.FMCP_ERR_BODY_TOO_LARGE_DECODED(where(req), coding, sizeText(limit));
      throw errors.FMCP_ERR_BODY_ENCODING(where(req), coding, (err as Error).message);
    }
  }
  return out;
}

/** "deflate" is the zlib format (RFC 9110 §8.4.1.2), but some clients send raw deflate under that name. */
async function inflateDeflate(body: Buffer, options: ZlibOptions): Promise<Buffer> {
  try {
    return await inflateAsync(body, options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).errno !== constants.Z_DATA_ERROR) throw err;
    // neither: the zlib error names what is wrong more plainly than the raw one
    return inflateRawAsync(body, options).catch((raw: NodeJS.ErrnoException) => {
      throw raw.code === 'ERR_BUFFER_TOO_LARGE' ? raw : err;
    });
  }
}
