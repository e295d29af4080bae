import { Agent, request } from 'node:http';
import type { HttpAnswer } from './http-conn.js';

interface Head {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** Pre-serialized heads, as the raw client writes them, split once into method, path and headers. */
const heads = new Map<string, Head>();

function parseHead(head: string): Head {
  let parsed = heads.get(head);
  if (parsed) return parsed;
  const lines = head.split('\r\n').filter((l) => l !== '');
  const [method, path] = lines[0]!.split(' ');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  parsed = { method: method!, path: path!, headers };
  if (heads.size > 10_000) heads.clear();
  heads.set(head, parsed);
  return parsed;
}

/**
 * The same requests as `HttpConnection`, sent with `http.request` through an `http.Agent` with
 * keep-alive: the client most Node programs use. Agents are shared per target, as programs share one.
 */
export class AgentConnection {
  private readonly inFlight = new Set<{ destroy(err: Error): void }>();
  private destroyed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly agent: Agent,
  ) {}

  request(head: string, body: string): Promise<HttpAnswer> {
    if (this.destroyed) return Promise.reject(new Error('connection stopped by the bench'));
    const h = parseHead(head);
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = request(
        { host: this.host, port: this.port, method: h.method, path: h.path, headers: { ...h.headers, 'Content-Length': String(Buffer.byteLength(body)) }, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            this.inFlight.delete(req);
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
            resolve({ status: res.statusCode ?? 0, headers, body: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', reject);
        },
      );
      this.inFlight.add(req);
      req.on('error', (err) => {
        this.inFlight.delete(req);
        reject(err);
      });
      req.end(body);
    });
  }

  /** Ends the requests in flight; they fail with `reason`. */
  destroy(reason = 'connection stopped by the bench'): void {
    this.destroyed = true;
    for (const req of this.inFlight) req.destroy(new Error(reason));
    this.inFlight.clear();
  }
}

/** A keep-alive agent with no socket cap: each bench client has one call in flight. */
export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
}
