import type { JsonObject } from '../../core/index.js';

/** Protocol versions the gateway speaks toward clients, newest first. */
export const SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export const LATEST_VERSION = SUPPORTED_VERSIONS[0];
/** Batches (JSON arrays) exist only in this version. */
export const BATCH_VERSION = '2025-03-26';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** server unavailable (crashed, restarting, failed) */
export const SERVER_UNAVAILABLE = -32000;
/** a call the client cancelled, answered only to a client that cannot take an empty event stream (LSP's code) */
export const REQUEST_CANCELLED = -32800;
/** the SDK's RequestTimeout code */
export const REQUEST_TIMEOUT = -32001;

export type JsonRpcId = string | number | null;

/**
 * -32600 for a message nested too deeply to forward: JSON.stringify recurses, and a few thousand levels of
 * arrays or objects exhaust the stack (JSON.parse does not: such a body parses, then cannot be sent on).
 */
export const isNestedTooDeeply = (err: unknown): boolean => err instanceof RangeError && err.message.includes('call stack');

/** What a client gets instead of a server's answer nested too deeply to serialize (see NESTED_TOO_DEEPLY). */
export function answerNestedTooDeeply(answer: JsonObject): JsonObject {
  return errorResponse(answer.id, INTERNAL_ERROR, 'Internal error: the server\'s answer nests arrays or objects too deeply for the gateway to forward it (serializing it ran out of stack, at a few thousand levels): the server must return flatter results');
}

export const NESTED_TOO_DEEPLY = 'Invalid Request: the message nests arrays or objects too deeply for the gateway to forward it (serializing it ran out of stack, at a few thousand levels; MCP messages need a few dozen): flatten its arguments, or send deeply nested data as a JSON string';

export function errorResponse(id: unknown, code: number, message: string, data?: unknown): JsonObject {
  const error: JsonObject = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id: id === undefined ? null : id, error };
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export type MessageKind = 'request' | 'notification' | 'response' | 'invalid';

const CALL_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESPONSE_MEMBERS = new Set(['jsonrpc', 'id', 'result', 'error']);

/**
 * Classifies one client message; `invalid` covers anything that is not a JSON-RPC 2.0 object an MCP
 * peer may send (`messageProblem` says why). A missing `jsonrpc` member is filled in (as the seed's
 * clients may omit it); any other value is invalid.
 */
export function kindOf(message: unknown): MessageKind {
  if (!isObject(message)) return 'invalid';
  if (message.jsonrpc === undefined) message.jsonrpc = '2.0';
  else if (message.jsonrpc !== '2.0') return 'invalid';
  const hasId = Object.hasOwn(message, 'id');
  if (typeof message.method === 'string') {
    if (message.params !== undefined && !isObject(message.params)) return 'invalid';
    if (unexpectedMember(message, CALL_MEMBERS) !== undefined) return 'invalid';
    if (!hasId) return 'notification';
    return validId(message.id) ? 'request' : 'invalid';
  }
  if (message.method !== undefined) return 'invalid';
  if (hasId && (Object.hasOwn(message, 'result') || Object.hasOwn(message, 'error'))) {
    return unexpectedMember(message, RESPONSE_MEMBERS) === undefined ? 'response' : 'invalid';
  }
  return 'invalid';
}

/** The first own member outside `allowed` (JSON.parse makes `__proto__` an own member like any other). */
function unexpectedMember(message: JsonObject, allowed: ReadonlySet<string>): string | undefined {
  for (const key of Object.keys(message)) if (!allowed.has(key)) return key;
  return undefined;
}

/** Why `kindOf` called a message invalid: the JSON-RPC error code and message to answer with. */
export function messageProblem(message: unknown): { code: number; message: string } {
  const shape = 'a request or notification has "jsonrpc": "2.0", a string "method", "params" as an object and, for a request, a string or number "id"; a response has "jsonrpc", "id" and "result" or "error"';
  if (!isObject(message)) return { code: INVALID_REQUEST, message: `Invalid Request: expected a JSON-RPC 2.0 message object, got ${Array.isArray(message) ? 'an array' : message === null ? 'null' : typeof message}: ${shape}` };
  if (message.jsonrpc !== '2.0') return { code: INVALID_REQUEST, message: `Invalid Request: "jsonrpc" must be "2.0"` };
  if (typeof message.method === 'string') {
    if (message.params !== undefined && !isObject(message.params)) {
      // an array is JSON-RPC (by-position params) but not MCP: -32602; anything else is not JSON-RPC at all: -32600
      if (!Array.isArray(message.params)) {
        const got = message.params === null ? 'null' : `a ${typeof message.params}`;
        return { code: INVALID_REQUEST, message: `Invalid Request: "params" of ${message.method} must be an object, got ${got} (JSON-RPC 2.0 params are structured values; MCP takes named params such as {"name": …})` };
      }
      return { code: INVALID_PARAMS, message: `Invalid params: "params" of ${message.method} must be an object, got an array (JSON-RPC 2.0 allows by-position arrays, MCP does not: send named params such as {"name": …})` };
    }
    const extra = unexpectedMember(message, CALL_MEMBERS);
    if (extra !== undefined) return { code: INVALID_REQUEST, message: `Invalid Request: unexpected member ${JSON.stringify(extra)}; a JSON-RPC request or notification has only "jsonrpc", "id", "method" and "params" (put extra data in params or params._meta)` };
    return { code: INVALID_REQUEST, message: 'Invalid Request: "id" must be a string or a number' };
  }
  if (message.method !== undefined) return { code: INVALID_REQUEST, message: `Invalid Request: "method" must be a string such as "tools/list"` };
  if (Object.hasOwn(message, 'id') && (Object.hasOwn(message, 'result') || Object.hasOwn(message, 'error'))) {
    const extra = unexpectedMember(message, RESPONSE_MEMBERS);
    if (extra !== undefined) return { code: INVALID_REQUEST, message: `Invalid Request: unexpected member ${JSON.stringify(extra)}; a JSON-RPC response has only "jsonrpc", "id" and "result" or "error"` };
  }
  return { code: INVALID_REQUEST, message: `Invalid Request: ${shape}` };
}

/**
 * Why an initialize request cannot open a session (the JSON-RPC -32602 message), or undefined: its params
 * need protocolVersion, capabilities and clientInfo (schema: InitializeRequestParams), else the version
 * negotiated and the capabilities the server is told would be guesses.
 */
export function initializeProblem(message: JsonObject): string | undefined {
  const params = isObject(message.params) ? message.params : {};
  const wrong: string[] = [];
  if (typeof params.protocolVersion !== 'string') wrong.push('"protocolVersion"');
  if (!isObject(params.capabilities)) wrong.push('"capabilities"');
  if (!isObject(params.clientInfo)) wrong.push('"clientInfo"');
  if (wrong.length === 0) return undefined;
  return `Invalid params: initialize is missing ${wrong.join(', ')} (or it is not the right type); the MCP spec requires all three: "protocolVersion" (a string such as "${LATEST_VERSION}"), "capabilities" (an object, {} for none) and "clientInfo" ({"name": …, "version": …})`;
}

/** The id to answer an invalid message with: its own when that is a valid id, else null. */
export function idOf(message: unknown): JsonRpcId {
  const id = isObject(message) ? message.id : null;
  return validId(id) ? (id as string | number) : null;
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
