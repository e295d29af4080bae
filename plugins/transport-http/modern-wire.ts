import type { Dispatcher } from 'undici';
import type { JsonObject } from '../../core/index.js';
import { request } from './undici.js';
import { headerValue, isObject, parseJson, readEvents, readText } from './http-body.js';

/**
 * Protocol 2026-07-28 on the wire toward a remote server: no `initialize`, no session; every request
 * carries its version and client capabilities in `_meta` and the `MCP-Protocol-Version`, `Mcp-Method`
 * and `Mcp-Name` headers (basic/transports/streamable-http.mdx, server/discover.mdx).
 */
export const MODERN_VERSION = '2026-07-28';
const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const META_CLIENT_INFO = 'io.modelcontextprotocol/clientInfo';
const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
/** Methods whose `Mcp-Name` header mirrors a body field. */
const NAME_SOURCE: Readonly<Record<string, string>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };
/** Visible ASCII, space and tab, without leading or trailing whitespace (RFC 9110 field values). */
const PLAIN = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/;

/** A header value as sent: plain when it can be, else the `=?base64?…?=` sentinel form. */
export function headerSafe(value: string): string {
  return PLAIN.test(value) ? value : `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

/** The headers a 2026-07-28 POST of this message carries. */
export function modernHeaders(message: JsonObject): Record<string, string> {
  const headers: Record<string, string> = { 'mcp-protocol-version': MODERN_VERSION };
  if (typeof message.method !== 'string') return headers;
  headers['mcp-method'] = message.method;
  const field = NAME_SOURCE[message.method];
  const value = field && isObject(message.params) ? message.params[field] : undefined;
  if (typeof value === 'string') headers['mcp-name'] = headerSafe(value);
  return headers;
}

/**
 * The request with the per-request envelope in `_meta`. The gateway declares no client capabilities:
 * the calls it forwards come without their caller's, so the server must not ask for input (MRTR).
 */
export function withEnvelope(message: JsonObject, clientInfo: unknown): JsonObject {
  const params: JsonObject = isObject(message.params) ? { ...message.params } : {};
  const meta: JsonObject = isObject(params._meta) ? { ...params._meta } : {};
  meta[META_PROTOCOL_VERSION] = MODERN_VERSION;
  meta[META_CLIENT_CAPABILITIES] = {};
  if (isObject(clientInfo)) meta[META_CLIENT_INFO] = clientInfo;
  params._meta = meta;
  return { ...message, params };
}

/** The `server/discover` request that probes a remote server's era. */
export function discoverRequest(id: string, clientInfo: unknown): JsonObject {
  return withEnvelope({ jsonrpc: '2.0', id, method: 'server/discover' }, clientInfo);
}

/** The discover result when the server offers 2026-07-28, else undefined. */
export function modernDiscoverResult(answer: JsonObject | undefined): JsonObject | undefined {
  const result = answer?.result;
  if (!isObject(result) || !Array.isArray(result.supportedVersions)) return undefined;
  return result.supportedVersions.includes(MODERN_VERSION) ? result : undefined;
}

/**
 * What the proxy's own `initialize` gets from a modern server: the discover result in the shape of an
 * initialize result, at the version the proxy asked for (it speaks the 2025 messages, this transport the wire).
 */
export function initializeResult(discover: JsonObject, requestedVersion: unknown): JsonObject {
  const meta = isObject(discover._meta) ? discover._meta : {};
  const serverInfo = isObject(discover.serverInfo) ? discover.serverInfo : isObject(meta[META_SERVER_INFO]) ? meta[META_SERVER_INFO] : { name: 'unknown', version: '0' };
  const result: JsonObject = {
    protocolVersion: typeof requestedVersion === 'string' ? requestedVersion : '2025-11-25',
    capabilities: isObject(discover.capabilities) ? discover.capabilities : {},
    serverInfo,
  };
  if (typeof discover.instructions === 'string') result.instructions = discover.instructions;
  return result;
}

/**
 * POSTs a `server/discover` probe; the discover result when the server offers 2026-07-28, undefined when
 * it answers otherwise (an HTTP error, a JSON-RPC error, no 2026-07-28 among its versions). Throws when unreachable.
 */
export async function discover(url: URL, headers: Record<string, string>, dispatcher: Dispatcher, timeoutMs: number, maxBytes: number, message: JsonObject, signal: AbortSignal): Promise<JsonObject | undefined> {
  const res = await request(url, {
    dispatcher,
    method: 'POST',
    headers: { ...headers, ...modernHeaders(message), accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    body: JSON.stringify(message),
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  if (res.statusCode < 200 || res.statusCode >= 300) {
    await res.body.dump().catch(() => undefined);
    return undefined;
  }
  if (!(headerValue(res.headers['content-type']) ?? '').startsWith('text/event-stream')) {
    return modernDiscoverResult(parseJson(await readText(res.body, maxBytes)));
  }
  let answer: JsonObject | undefined;
  await readEvents(res.body, maxBytes, (event) => {
    const m = parseJson(event.data);
    if (m && m.id === message.id && m.method === undefined && !answer) {
      answer = m;
      res.body.destroy();
    }
  }).catch((err: Error) => {
    if (!answer) throw err;
  });
  return modernDiscoverResult(answer);
}
