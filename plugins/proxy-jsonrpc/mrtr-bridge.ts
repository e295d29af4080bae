import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JsonObject } from '../../core/index.js';
import { errorResponse, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, isObject, METHOD_NOT_FOUND } from './jsonrpc.js';
import { decorateResult, logAllowed, MISSING_REQUIRED_CLIENT_CAPABILITY, MRTR_METHODS, type ResultDecoration } from './modern-era.js';
import type { CallSink } from './call-sink.js';

/**
 * The MRTR bridge (basic/patterns/mrtr.mdx): a legacy server asks the client things with JSON-RPC
 * requests (sampling, elicitation, roots) while it serves a call; a 2026-07-28 client only takes them
 * as `resultType: "input_required"` results and answers by retrying the call with `inputResponses`.
 * A `ModernCall` is the sink of one upstream call; it outlives the HTTP request that started it, and
 * each retry re-attaches a new HTTP request to it, found through a `requestState` the gateway signs.
 */

/** Where the current HTTP request of a modern call writes. */
export interface ModernTarget {
  readonly clientId: unknown;
  readonly progressToken: unknown;
  /** the request's `_meta` (logLevel decides whether log messages go out) */
  readonly meta: JsonObject;
  /** the request's client capabilities */
  readonly capabilities: JsonObject;
  notify(message: JsonObject): void;
  finish(message: JsonObject): void;
  /** Optional: the answer to a call refused before it reached a server, with this HTTP status and headers */
  refuse?(message: JsonObject, status: number, headers: Record<string, string>): void;
}

interface ServerAsk {
  readonly request: JsonObject;
  readonly answer: (response: JsonObject) => void;
}

export interface RequestStateClaims {
  /** the waiting call */
  readonly w: string;
  /** digest of the caller's principal */
  readonly p: string;
  /** server name, method and name/uri of the original request */
  readonly s: string;
  readonly m: string;
  readonly n: string;
  /** digest of the original request's params (canonical JSON, without _meta and the MRTR fields) */
  readonly d: string;
  /** expiry, ms since the epoch */
  readonly e: number;
  /** the replica that holds the call ('' without replicas) */
  readonly r: string;
}

export interface BridgeOptions {
  /** how long a call waits for the client's retry before it is cancelled upstream */
  readonly inputTimeoutMs: number;
  readonly replicaId: string;
}

const digest = (v: string): string => createHash('sha256').update(v).digest('base64url').slice(0, 22);

/**
 * JSON with object keys sorted at every level, so equal params give equal text whatever their key order.
 * One stack frame per level (no map/join callbacks), so it nests at least as deep as JSON.stringify,
 * which refuses a message before it reaches a server (NESTED_TOO_DEEPLY).
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + canonicalJson(value[i]);
    return `${out}]`;
  }
  if (isObject(value)) {
    let out = '{';
    for (const k of Object.keys(value).sort()) {
      if (value[k] === undefined) continue;
      out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${canonicalJson(value[k])}`;
    }
    return `${out}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What a retry must repeat of the original request (mrtr.mdx: "a digest of its salient parameters"):
 * its params without `_meta` (version, capabilities, progress token may change) and the MRTR fields.
 */
export function paramsDigest(params: JsonObject): string {
  const salient: JsonObject = {};
  for (const [k, v] of Object.entries(params)) if (k !== '_meta' && k !== 'inputResponses' && k !== 'requestState') salient[k] = v;
  return digest(canonicalJson(salient));
}

/** Why a retry cannot continue a waiting call: the JSON-RPC error to answer it with. */
export interface RetryRefusal {
  readonly code: number;
  readonly message: string;
}

/** The signed-state half of the bridge: the calls that wait for a retry, and the requestState codec. */
export class MrtrBridge {
  private readonly key = randomBytes(32);
  private readonly waiting = new Map<string, ModernCall>();

  constructor(readonly options: BridgeOptions) {}

  get size(): number {
    return this.waiting.size;
  }

  /** HMAC-SHA256 over the claims; the state is `<claims>.<mac>`, both base64url. */
  sign(claims: RequestStateClaims): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${body}.${createHmac('sha256', this.key).update(body).digest('base64url')}`;
  }

  /** The claims of a state this gateway signed, or undefined (tampered, foreign, malformed). */
  verify(state: string): RequestStateClaims | undefined {
    const dot = state.indexOf('.');
    if (dot <= 0) return undefined;
    const body = state.slice(0, dot);
    const mac = Buffer.from(state.slice(dot + 1), 'base64url');
    const expected = createHmac('sha256', this.key).update(body).digest();
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as RequestStateClaims;
      return typeof claims.w === 'string' && typeof claims.e === 'number' ? claims : undefined;
    } catch {
      return undefined;
    }
  }

  /** Binds a state to the caller and to the original request (spec: principal, expiry, request identity). */
  claimsFor(call: ModernCall): RequestStateClaims {
    return {
      w: call.waitId,
      p: digest(call.principal),
      s: call.serverName,
      m: call.method,
      n: digest(call.name),
      d: call.paramsDigest,
      e: Date.now() + this.options.inputTimeoutMs,
      r: this.options.replicaId,
    };
  }

  /**
   * The call a retry resumes, or why it cannot. Checked where the call waits (a replica forwards a retry
   * to the holder, which alone can verify the MAC), against the signed claims.
   */
  resume(state: unknown, principal: string, serverName: string, method: string, name: string, params: JsonObject): ModernCall | RetryRefusal {
    const invalid = (why: string): RetryRefusal => ({ code: INVALID_REQUEST, message: `Invalid Request: ${why}` });
    if (typeof state !== 'string') return invalid('requestState must be the string the gateway returned');
    const claims = this.verify(state);
    if (!claims) return invalid('requestState was not issued by this gateway or was altered: retry the original request without it');
    if (claims.p !== digest(principal)) return invalid('requestState belongs to another caller');
    if (claims.s !== serverName || claims.m !== method || claims.n !== digest(name)) return invalid(`requestState was issued for another request (${claims.m} on "${claims.s}"): send it only with the retry of that request`);
    if (claims.d !== paramsDigest(params)) {
      return {
        code: INVALID_PARAMS,
        message: `Invalid params: this retry's params differ from those of the original ${claims.m} request that requestState continues; a retry must repeat the original request's params exactly (only inputResponses, requestState and _meta may change), or send the changed request anew without requestState`,
      };
    }
    if (claims.e < Date.now()) return invalid('requestState expired: retry the original request without it');
    if (claims.r !== this.options.replicaId) return invalid(`requestState was issued by replica "${claims.r}", which this gateway is not`);
    const call = this.waiting.get(claims.w);
    if (!call) return invalid('the call this requestState continues is no longer waiting (it was answered, timed out, or the gateway restarted): retry the original request without requestState');
    return call;
  }

  /**
   * The replica a state names, when it is another one: read without checking the signature (only the
   * holder can), to know where to forward the retry; the holder then checks it in full.
   */
  holderOf(state: unknown): string | undefined {
    if (typeof state !== 'string') return undefined;
    const dot = state.indexOf('.');
    if (dot <= 0) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(state.slice(0, dot), 'base64url').toString('utf8')) as Partial<RequestStateClaims>;
      const r = claims?.r;
      return typeof r === 'string' && r !== '' && r !== this.options.replicaId ? r : undefined;
    } catch {
      return undefined;
    }
  }

  park(call: ModernCall): void {
    this.waiting.set(call.waitId, call);
  }

  unpark(call: ModernCall): void {
    if (this.waiting.get(call.waitId) === call) this.waiting.delete(call.waitId);
  }

  /** Ends every waiting call (gateway stop): the server's requests get an error, the calls are cancelled. */
  stop(): void {
    for (const call of [...this.waiting.values()]) call.abandon('the gateway is stopping');
  }
}

/** Which client capability a server request needs; undefined when the method is not one MRTR carries. */
function capabilityFor(request: JsonObject): { key: string; allowed: (caps: JsonObject) => boolean } | undefined {
  switch (request.method) {
    case 'sampling/createMessage':
      return { key: 'sampling', allowed: (c) => isObject(c.sampling) };
    case 'roots/list':
      return { key: 'roots', allowed: (c) => isObject(c.roots) };
    case 'elicitation/create': {
      const mode = isObject(request.params) && request.params.mode === 'url' ? 'url' : 'form';
      return {
        key: `elicitation.${mode}`,
        allowed: (c) => {
          const e = c.elicitation;
          if (!isObject(e)) return false;
          // an empty elicitation capability means form mode only
          if (mode === 'form') return Object.keys(e).length === 0 || isObject(e.form);
          return isObject(e.url);
        },
      };
    }
    default:
      return undefined;
  }
}

/** The sink of one modern call to a server; see the file comment. */
export class ModernCall implements CallSink {
  readonly session = undefined;
  readonly modern = true;
  private waitIdValue: string | undefined;
  private digestValue: string | undefined;
  /** cancels the upstream call */
  cancelUpstream: (reason: string) => void = () => undefined;

  private target: ModernTarget | undefined;
  private final: JsonObject | undefined;
  private readonly unasked = new Map<string, ServerAsk>();
  private readonly asked = new Map<string, ServerAsk>();
  private nextKey = 1;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  /** the client capabilities of the latest request attached to this call */
  private capabilities: JsonObject;

  constructor(
    private readonly bridge: MrtrBridge,
    readonly principal: string,
    readonly serverName: string,
    readonly method: string,
    /** params.name or params.uri of the original request ('' when none) */
    readonly name: string,
    /** computes `paramsDigest` of the original request (a retry must carry the same): asked only if the call waits for input */
    private readonly digestOf: () => string,
    private readonly decoration: () => ResultDecoration,
    target: ModernTarget,
  ) {
    this.target = target;
    this.capabilities = target.capabilities;
  }

  /** The key of this call among the waiting ones; made when first asked (most calls never wait: a random id costs a syscall). */
  get waitId(): string {
    return (this.waitIdValue ??= randomBytes(12).toString('base64url'));
  }

  /** `paramsDigest` of the original request, computed when first asked. */
  get paramsDigest(): string {
    return (this.digestValue ??= this.digestOf());
  }

  /** The final answer from the server (or the gateway's error in its place). */
  response(message: JsonObject): void {
    this.final = message;
    this.flush();
  }

  /** Refused before it reached a server (every process busy): 503 and Retry-After where the target can. */
  refused(message: JsonObject, status: number, headers: Record<string, string>): void {
    const target = this.target;
    if (!target?.refuse || this.ended) {
      this.response(message);
      return;
    }
    this.ended = true;
    this.target = undefined;
    target.refuse({ ...message, id: target.clientId }, status, headers);
  }

  notification(message: JsonObject): void {
    const target = this.target;
    if (!target) return; // between rounds nobody listens: progress and logs of that gap are dropped
    if (message.method === 'notifications/progress') {
      if (target.progressToken === undefined || !isObject(message.params)) return;
      target.notify({ ...message, params: { ...message.params, progressToken: target.progressToken } });
      return;
    }
    if (message.method === 'notifications/message' && !logAllowed(target.meta, message)) return;
    target.notify(message);
  }

  /** A modern call never carries a legacy server request on a stream. */
  request(): boolean {
    return false;
  }

  canAnswer(message: JsonObject): boolean {
    const need = capabilityFor(message);
    return need !== undefined && MRTR_METHODS.has(this.method) && need.allowed(this.capabilities);
  }

  takeServerRequest(message: JsonObject, answer: (response: JsonObject) => void): boolean {
    const need = capabilityFor(message);
    const capabilities = this.capabilities;
    if (!need || !MRTR_METHODS.has(this.method)) {
      answer(errorResponse(null, METHOD_NOT_FOUND, `The client's ${this.method} request is on protocol 2026-07-28, which cannot carry ${String(message.method)} for it`));
      return true;
    }
    if (!need.allowed(capabilities)) {
      answer(
        errorResponse(null, MISSING_REQUIRED_CLIENT_CAPABILITY, `The client did not declare the "${need.key}" capability on its ${this.method} request, so it cannot answer ${String(message.method)}`, {
          requiredCapabilities: { [need.key.split('.')[0]!]: need.key.includes('.') ? { [need.key.split('.')[1]!]: {} } : {} },
        }),
      );
      return true;
    }
    const request: JsonObject = { method: message.method };
    if (message.params !== undefined) request.params = message.params;
    this.unasked.set(`${String(message.method).split('/')[0]}-${this.nextKey++}`, { request, answer });
    this.flush();
    return true;
  }

  /** A retry arrived with this call's requestState: answer the server's requests, then continue. */
  resume(target: ModernTarget, inputResponses: unknown): void {
    clearTimeout(this.timer);
    this.bridge.unpark(this);
    this.target = target;
    this.capabilities = target.capabilities;
    const responses = isObject(inputResponses) ? inputResponses : {};
    for (const [key, ask] of [...this.asked]) {
      const value = responses[key];
      if (!isObject(value)) continue;
      this.asked.delete(key);
      ask.answer({ result: value });
    }
    // what the client left unanswered is asked again, first
    const missing = [...this.asked];
    this.asked.clear();
    const later = [...this.unasked];
    this.unasked.clear();
    for (const [k, v] of [...missing, ...later]) this.unasked.set(k, v);
    this.flush();
  }

  /** The HTTP request attached to this call went away before an answer: spec cancellation. */
  detachClosed(target: ModernTarget): void {
    if (this.target !== target) return;
    this.abandon('client closed the response stream');
  }

  /** Ends the call: server requests get an error, the upstream call is cancelled. */
  abandon(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.bridge.unpark(this);
    this.target = undefined;
    for (const ask of [...this.asked.values(), ...this.unasked.values()]) ask.answer(errorResponse(null, INTERNAL_ERROR, `The client did not answer: ${reason}`));
    this.asked.clear();
    this.unasked.clear();
    if (this.final === undefined) this.cancelUpstream(reason);
  }

  private flush(): void {
    const target = this.target;
    if (!target || this.ended) return;
    if (this.final !== undefined) {
      this.ended = true;
      this.target = undefined;
      const answer = { ...this.final, id: target.clientId };
      target.finish(decorateResult(this.method, answer, this.decoration()));
      // a server request that came with or after the final answer can no longer reach the client
      for (const ask of this.unasked.values()) ask.answer(errorResponse(null, INTERNAL_ERROR, 'The call finished before the client could answer'));
      this.unasked.clear();
      return;
    }
    if (this.unasked.size === 0) return;
    const inputRequests: JsonObject = {};
    for (const [key, ask] of this.unasked) {
      inputRequests[key] = ask.request;
      this.asked.set(key, ask);
    }
    this.unasked.clear();
    this.target = undefined;
    this.bridge.park(this);
    const requestState = this.bridge.sign(this.bridge.claimsFor(this));
    const serverInfo = this.decoration().serverInfo;
    const result: JsonObject = { resultType: 'input_required', inputRequests, requestState };
    if (serverInfo !== undefined) result._meta = { 'io.modelcontextprotocol/serverInfo': serverInfo };
    target.finish({ jsonrpc: '2.0', id: target.clientId, result });
    this.timer = setTimeout(() => this.abandon(`no retry within ${this.bridge.options.inputTimeoutMs} ms`), this.bridge.options.inputTimeoutMs);
    this.timer.unref();
  }
}
