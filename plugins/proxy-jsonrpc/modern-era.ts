import type { IncomingHttpHeaders } from 'node:http';
import type { JsonObject } from '../../core/index.js';
import { errorResponse, INVALID_REQUEST, isObject, SUPPORTED_VERSIONS } from './jsonrpc.js';

/**
 * Protocol 2026-07-28 ("modern": no `initialize`, version and client capabilities in every request's
 * `_meta`). What tells the two eras apart, what the modern request headers must say, and what a modern
 * result carries on top of a legacy server's answer.
 */

/** Modern protocol versions the gateway speaks toward clients, newest first. */
export const MODERN_VERSIONS = ['2026-07-28'] as const;
/** Every version served on `/{name}/mcp`, as named in `server/discover` and UnsupportedProtocolVersion. */
export const ALL_VERSIONS: readonly string[] = [...MODERN_VERSIONS, ...SUPPORTED_VERSIONS];

export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
export const META_CLIENT_INFO = 'io.modelcontextprotocol/clientInfo';
export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
export const META_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';
export const META_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';

export const HEADER_MISMATCH = -32020;
export const MISSING_REQUIRED_CLIENT_CAPABILITY = -32021;
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;
export const INVALID_PARAMS = -32602;

/** Methods whose `Mcp-Name` header mirrors a body field. */
const NAME_SOURCE: Readonly<Record<string, string>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };
/** Methods whose complete results carry `ttlMs` and `cacheScope`. */
export const CACHEABLE = new Set(['server/discover', 'tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read']);
/** Methods that may answer `input_required` (and so may carry the server's sampling/elicitation/roots requests). */
export const MRTR_METHODS = new Set(['tools/call', 'prompts/get', 'resources/read']);
/** Legacy methods this revision removed: a modern client sending one gets method-not-found. */
export const REMOVED_METHODS = new Set(['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);

/** A date-shaped version no older than the first modern revision. */
export const isModernVersion = (v: unknown): v is string => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) && v >= MODERN_VERSIONS[MODERN_VERSIONS.length - 1]!;

/** The `_meta` of a request's params, if any. */
export function requestMeta(message: JsonObject): JsonObject | undefined {
  const params = message.params;
  return isObject(params) && isObject(params._meta) ? params._meta : undefined;
}

/**
 * Backward Compatibility (streamable-http.mdx): a request is modern when its `_meta` carries a protocol
 * version, or when its `MCP-Protocol-Version` header names a modern one. `initialize` is always legacy,
 * and a bare JSON-RPC call with neither stays the gateway's handshake-free legacy call.
 */
export function isModernRequest(message: unknown, headers: IncomingHttpHeaders): message is JsonObject {
  if (!isObject(message) || message.method === 'initialize') return false;
  const meta = requestMeta(message);
  if (meta && meta[META_PROTOCOL_VERSION] !== undefined) return true;
  return isModernVersion(headers['mcp-protocol-version']);
}

/** A rejection before dispatch: its HTTP status and JSON-RPC body. */
export interface Rejection {
  readonly status: number;
  readonly body: JsonObject;
}

const reject = (status: number, id: unknown, code: number, message: string, data?: unknown): Rejection => ({ status, body: errorResponse(id, code, message, data) });

const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;
/** Visible ASCII, space and tab, without leading or trailing whitespace (RFC 9110 field values). */
const PLAIN = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/;

/** Decodes an `Mcp-Name` / `Mcp-Param-*` value (plain, or the `=?base64?…?=` sentinel); undefined when malformed. */
export function decodeHeaderValue(value: string): string | undefined {
  if (value.startsWith('=?base64?') && value.endsWith('?=')) {
    const m = SENTINEL.exec(value);
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64');
    if (decoded.toString('base64') !== m[1]) return undefined; // not canonical base64
    return decoded.toString('utf8');
  }
  return PLAIN.test(value) ? value : undefined;
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Checks a modern request before dispatch, in the order the SDK's validation ladder answers: protocol
 * version (header present, equal to the body's, supported), then `Mcp-Method`, then `Mcp-Name`, then the
 * envelope. Returns the validated envelope, or the rejection to send.
 */
export function validateModernRequest(message: JsonObject, headers: IncomingHttpHeaders): { version: string; capabilities: JsonObject; meta: JsonObject } | Rejection {
  const id = message.id;
  const method = String(message.method);
  const meta = requestMeta(message);
  const bodyVersion = meta?.[META_PROTOCOL_VERSION];
  const headerVersion = single(headers, 'mcp-protocol-version');
  if (headerVersion === undefined) {
    return reject(400, id, HEADER_MISMATCH, 'Header mismatch: the MCP-Protocol-Version header is missing; a 2026-07-28 request must send it, equal to _meta["io.modelcontextprotocol/protocolVersion"]');
  }
  if (bodyVersion !== undefined && headerVersion !== bodyVersion) {
    return reject(400, id, HEADER_MISMATCH, `Header mismatch: MCP-Protocol-Version header value '${headerVersion}' does not match body value '${String(bodyVersion)}'`);
  }
  if (!(MODERN_VERSIONS as readonly string[]).includes(headerVersion)) {
    return reject(400, id, UNSUPPORTED_PROTOCOL_VERSION, `Unsupported protocol version "${headerVersion}": this gateway supports ${ALL_VERSIONS.join(', ')}`, {
      supported: [...ALL_VERSIONS],
      requested: headerVersion,
    });
  }
  const headerMethod = single(headers, 'mcp-method');
  if (headerMethod === undefined) return reject(400, id, HEADER_MISMATCH, `Header mismatch: the Mcp-Method header is missing; send "Mcp-Method: ${method}"`);
  if (headerMethod !== method) return reject(400, id, HEADER_MISMATCH, `Header mismatch: Mcp-Method header value '${headerMethod}' does not match body value '${method}'`);
  const field = Object.hasOwn(NAME_SOURCE, method) ? NAME_SOURCE[method] : undefined;
  if (field !== undefined) {
    const params = isObject(message.params) ? message.params : {};
    const bodyName = params[field];
    const raw = single(headers, 'mcp-name');
    if (typeof bodyName === 'string') {
      if (raw === undefined) return reject(400, id, HEADER_MISMATCH, `Header mismatch: the Mcp-Name header is missing; ${method} must mirror params.${field} in it`);
      const decoded = decodeHeaderValue(raw);
      if (decoded === undefined) return reject(400, id, HEADER_MISMATCH, 'Header mismatch: the Mcp-Name header value has invalid characters or a malformed =?base64?…?= encoding');
      if (decoded !== bodyName) return reject(400, id, HEADER_MISMATCH, `Header mismatch: Mcp-Name header value '${raw}' does not match body value '${bodyName}'`);
    }
  }
  if (!meta || bodyVersion === undefined) {
    return reject(400, id, INVALID_PARAMS, `Invalid params: a 2026-07-28 request needs params._meta["${META_PROTOCOL_VERSION}"] and ["${META_CLIENT_CAPABILITIES}"]`);
  }
  const capabilities = meta[META_CLIENT_CAPABILITIES];
  if (!isObject(capabilities)) {
    return reject(400, id, INVALID_PARAMS, `Invalid params: params._meta["${META_CLIENT_CAPABILITIES}"] must be an object (send {} for none)`);
  }
  return { version: headerVersion, capabilities, meta };
}

export const isRejection = (v: unknown): v is Rejection => isObject(v) && typeof (v as { status?: unknown }).status === 'number';

/** The request the legacy server sees: the modern `_meta` keys and MRTR fields removed. */
export function toLegacyRequest(message: JsonObject): JsonObject {
  const params = isObject(message.params) ? { ...message.params } : {};
  delete params.inputResponses;
  delete params.requestState;
  if (isObject(params._meta)) {
    const meta: JsonObject = {};
    for (const [k, v] of Object.entries(params._meta)) if (!k.startsWith('io.modelcontextprotocol/')) meta[k] = v;
    if (Object.keys(meta).length > 0) params._meta = meta;
    else delete params._meta;
  }
  return { jsonrpc: '2.0', id: message.id, method: message.method, params };
}

/** What a modern result carries on top of the server's: resultType, serverInfo, and caching hints. */
export interface ResultDecoration {
  readonly serverInfo: unknown;
  readonly ttlMs: number;
  readonly cacheScope: 'public' | 'private';
}

export function decorateResult(method: string, response: JsonObject, decoration: ResultDecoration): JsonObject {
  if (!isObject(response.result)) return response;
  const result: JsonObject = { ...response.result };
  if (result.resultType === undefined) result.resultType = 'complete';
  const meta: JsonObject = isObject(result._meta) ? { ...result._meta } : {};
  if (meta[META_SERVER_INFO] === undefined && decoration.serverInfo !== undefined) meta[META_SERVER_INFO] = decoration.serverInfo;
  result._meta = meta;
  if (result.resultType === 'complete' && CACHEABLE.has(method)) {
    if (typeof result.ttlMs !== 'number' || result.ttlMs < 0) result.ttlMs = decoration.ttlMs;
    if (result.cacheScope !== 'public' && result.cacheScope !== 'private') result.cacheScope = decoration.cacheScope;
  }
  return { ...response, result };
}

/** The `_meta` keys 2026-07-28 added (a 2025 era key such as `io.modelcontextprotocol/related-task` stays). */
const MODERN_META_KEYS = [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_SERVER_INFO, META_LOG_LEVEL, META_SUBSCRIPTION_ID];

/**
 * A response for a 2025-era client: a server that speaks 2026-07-28 (a modern remote) answers with
 * `resultType`, caching hints and modern `_meta` keys that the client's protocol does not have. Changes
 * `response` in place; caching hints go only from a result that had `resultType` (a modern one).
 */
export function toLegacyResult(response: JsonObject): void {
  const result = response.result;
  if (!isObject(result)) return;
  if (result.resultType !== undefined) {
    delete result.resultType;
    delete result.ttlMs;
    delete result.cacheScope;
  }
  const meta = result._meta;
  if (!isObject(meta)) return;
  for (const key of MODERN_META_KEYS) delete meta[key];
  if (Object.keys(meta).length === 0) delete result._meta;
}

/** Log levels in increasing severity (RFC 5424 names, as MCP uses them). */
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Whether a `notifications/message` may go to a request with this `_meta` (only with a logLevel, at or above it). */
export function logAllowed(meta: JsonObject, notification: JsonObject): boolean {
  const wanted = LEVELS.indexOf(String(meta[META_LOG_LEVEL]));
  if (wanted < 0) return false;
  const level = isObject(notification.params) ? LEVELS.indexOf(String(notification.params.level)) : -1;
  return level >= wanted;
}

export { INVALID_REQUEST };
