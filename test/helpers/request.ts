import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** the body parsed as JSON */
  json<T = Record<string, unknown>>(): T;
}

export interface RequestSpec {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** write the body in pieces without a Content-Length (chunked) */
  chunks?: (string | Buffer)[];
}

/** One HTTP request with node:http (which, unlike fetch, lets a test set Host and Origin). */
export function request(port: number, spec: RequestSpec = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: spec.method ?? 'GET', path: spec.path ?? '/', headers: spec.headers, agent: false },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${spec.method ?? 'GET'} ${spec.path ?? '/'} within 10 s`)));
    // the server may answer (413) and close before the whole body is written: the answer still counts
    req.on('error', reject);
    if (spec.chunks) {
      for (const chunk of spec.chunks) req.write(chunk);
      req.end();
    } else req.end(spec.body);
  });
}

/** Waits until `check` is true, polling; fails after `ms`. */
export async function waitFor(check: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Polls the async `probe` until it returns a value other than undefined, and returns it; fails after `ms`
 * naming `what`. For waiting on an event a test can only observe from outside.
 */
export async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string, every = 25): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}
