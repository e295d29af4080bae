import type { JsonObject } from '../../core/index.js';

/** Protocol versions the gateway speaks toward clients, newest first. */
export const SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export const LATEST_VERSION = SUPPORTED_VERSIONS[0];
/** Batches (JSON arrays) exist only in this version. */
export const BATCH_VERSION = '2025-03-26';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INTERNAL_ERROR = -32603;
/** server unavailable (crashed, restarting, failed) */
export const SERVER_UNAVAILABLE = -32000;
/** a call the client cancelled, answered only to a client that cannot take an empty event stream (LSP's code) */
export const REQUEST_CANCELLED = -32800;
/** the SDK's RequestTimeout code */
export const REQUEST_TIMEOUT = -32001;

export type JsonRpcId = string | number | null;

export function errorResponse(id: unknown, code: number, message: string, data?: unknown): JsonObject {
  const error: JsonObject = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id: id === undefined ? null : id, error };
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export type MessageKind = 'request' | 'notification' | 'response' | 'invalid';

/**
 * Classifies one client message; `invalid` covers anything that is not a JSON-RPC 2.0 object. A missing
 * `jsonrpc` member is filled in (as the seed's clients may omit it); any other value is invalid.
 */
export function kindOf(message: unknown): MessageKind {
  if (!isObject(message)) return 'invalid';
  if (message.jsonrpc === undefined) message.jsonrpc = '2.0';
  else if (message.jsonrpc !== '2.0') return 'invalid';
  const hasId = 'id' in message;
  if (typeof message.method === 'string') {
    const params = message.params;
    if (params !== undefined && (typeof params !== 'object' || params === null)) return 'invalid';
    if (!hasId) return 'notification';
    return validId(message.id) ? 'request' : 'invalid';
  }
  if (message.method !== undefined) return 'invalid';
  if (hasId && ('result' in message || 'error' in message)) return 'response';
  return 'invalid';
}

function validId(id: unknown): boolean {
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

/** Picks the version to answer: the client's when the gateway speaks it and it is not newer than the server's. */
export function negotiateVersion(requested: unknown, serverVersion: string): string {
  if (typeof requested === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(requested)) {
    return requested <= serverVersion ? requested : serverVersion;
  }
  return (SUPPORTED_VERSIONS as readonly string[]).includes(serverVersion) ? serverVersion : LATEST_VERSION;
}

export function progressTokenOf(message: JsonObject): unknown {
  const params = message.params;
  if (!isObject(params)) return undefined;
  const meta = params._meta;
  return isObject(meta) ? meta.progressToken : undefined;
}
