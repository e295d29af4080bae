import type { Dispatcher } from 'undici';
import { request } from './undici.js';
import {
  errors,
  type FluidError,
  type JsonObject,
  type Logger,
  type Upstream,
  type UpstreamListener,
  type UpstreamOptions,
  type UpstreamStatus,
} from '../../core/index.js';
import { remoteHeaders } from './remote-config.js';
import { backoff, describe, headerValue, isObject, isRequest, parseJson, readPostAnswer, readText, snippet } from './http-body.js';
import { HttpSseConnection } from './http-sse-connection.js';
import { ListenStream } from './listen-stream.js';
import { discover, discoverRequest, initializeResult, modernHeaders, withEnvelope } from './modern-wire.js';
import type { RemoteSettings } from './settings.js';

export type { ReconnectSettings, RemoteSettings } from './settings.js';

/** 'streamable': Streamable HTTP with a session; 'legacy': 2024-11-05 HTTP+SSE; 'modern': 2026-07-28, no session */
export type Mode = 'unknown' | 'streamable' | 'legacy' | 'modern';

/** A JSON-RPC error code for failures of the transport itself (implementation-defined server error). */
const TRANSPORT_ERROR = -32000;
const FALLBACK_STATUSES = new Set([400, 404, 405]);
const PROBE_HEADERS_TIMEOUT_MS = 10_000;

/**
 * An MCP server reached by URL: Streamable HTTP (2025-03-26 and later), falling back to the
 * 2024-11-05 HTTP+SSE transport when the server refuses `initialize` with 400, 404 or 405.
 */
export class RemoteUpstream implements Upstream {
  private readonly url: URL;
  private readonly name: string;
  private readonly log: Logger;
  private readonly headers: Record<string, string>;
  private readonly statusValue: UpstreamStatus = { state: 'starting', restarts: 0 };
  private listener: UpstreamListener | undefined;
  private mode: Mode = 'unknown';
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private initializeId: unknown;
  /** bumped on every loss: answers to requests of an older generation are dropped */
  private generation = 0;
  /** initialize and notifications/initialized hold later messages back until they are sent */
  private gate: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<AbortController>();
  private listen: ListenStream | undefined;
  private legacy: HttpSseConnection | undefined;
  /** 2026-07-28: the POST of each request in flight, by its id, so notifications/cancelled can close it */
  private readonly modernCalls = new Map<unknown, AbortController>();
  /** the proxy's clientInfo, from its initialize, sent in every modern request's `_meta` */
  private clientInfo: unknown;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    options: UpstreamOptions,
    private readonly agent: () => Promise<Dispatcher>,
    private readonly settings: RemoteSettings,
    private readonly onStopped: (upstream: RemoteUpstream) => void = () => undefined,
  ) {
    this.name = options.server.name;
    this.url = new URL(options.server.entry.url!);
    this.log = options.log.child({ url: this.url.href });
    this.headers = remoteHeaders(options.server, options.env);
  }

  get status(): UpstreamStatus {
    return { ...this.statusValue };
  }

  /** which transport the server speaks, once the handshake told: 'modern' (2026-07-28), 'streamable' (Streamable HTTP) or 'legacy' (HTTP+SSE) */
  get protocol(): Mode {
    return this.mode;
  }

  async start(listener: UpstreamListener): Promise<void> {
    if (this.listener) throw errors.FMCP_ERR_INTERNAL(`remote upstream for "${this.name}" was started twice`);
    this.listener = listener;
    try {
      await this.probe(this.generation);
    } catch (err) {
      this.statusValue.state = 'failed';
      this.statusValue.lastError = (err as Error).message;
      if (this.stopped) throw err;
      // failed, and tried again in the background with the reconnect backoff, as a stdio server is restarted:
      // the listener hears it is down (it is failed meanwhile) and up() when the server answers
      listener.down(err as Error, true);
      this.scheduleReconnect(0);
      return;
    }
    if (this.stopped) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(this.name, 'it was stopped while starting');
    this.statusValue.state = 'up';
    listener.up();
  }

  send(message: JsonObject | string): void {
    if (this.stopped) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(this.name, `the connection to ${this.url.href} was stopped`);
    let msg: JsonObject;
    let body: string;
    if (typeof message === 'string') {
      body = message;
      msg = JSON.parse(message) as JsonObject;
    } else {
      msg = message;
      body = JSON.stringify(message);
    }
    const gen = this.generation;
    const run = (): Promise<void> => this.post(msg, body, gen).catch((err: Error) => this.log.error({ error: err.message }, 'sending to the remote server failed'));
    if (msg.method === 'initialize') {
      this.gate = this.gate.then(run);
    } else if (msg.method === 'notifications/initialized') {
      // the GET stream lives on: it must not hold the gate
      this.gate = this.gate.then(run).then(() => this.openListenStream(gen));
    } else {
      void this.gate.then(run);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const wasLive = this.statusValue.state === 'up' || this.statusValue.state === 'starting';
    this.statusValue.state = 'stopped';
    clearTimeout(this.reconnectTimer);
    this.listen?.close();
    this.legacy?.close();
    for (const ac of this.inFlight) ac.abort();
    this.inFlight.clear();
    const session = this.mode === 'streamable' ? this.sessionId : undefined;
    this.sessionId = undefined;
    if (session) {
      // ending the session is a courtesy to the server: bounded, and its failure changes nothing
      await request(this.url, {
        dispatcher: await this.agent(),
        method: 'DELETE',
        headers: this.sessionHeaders(session),
        headersTimeout: 2000,
        bodyTimeout: 2000,
      })
        .then((res) => res.body.dump())
        .catch(() => undefined);
    }
    if (wasLive && this.listener) this.listener.down(new Error(`the remote server ${this.url.href} was stopped`), false);
    this.onStopped(this);
  }

  // ---- sending -----------------------------------------------------------------------------------

  private async post(msg: JsonObject, body: string, gen: number): Promise<void> {
    // queued before a loss: the listener heard down() and redoes its handshake after up()
    if (gen !== this.generation) return;
    if (msg.method === 'initialize') {
      this.initializeId = msg.id;
      if (this.mode !== 'legacy') {
        this.sessionId = undefined;
        this.protocolVersion = undefined;
      }
      // a server met for the first time, or one that spoke 2026-07-28 before: does it (still) speak it?
      if (this.mode === 'unknown' || this.mode === 'modern') {
        const params = isObject(msg.params) ? msg.params : {};
        const discovered = await this.discover(params.clientInfo, gen);
        if (gen !== this.generation || this.stopped) return;
        if (discovered) {
          this.mode = 'modern';
          this.clientInfo = params.clientInfo;
          this.log.info('the remote server speaks 2026-07-28 (it answered server/discover)');
          this.deliver({ jsonrpc: '2.0', id: msg.id, result: initializeResult(discovered, params.protocolVersion) }, gen);
          return;
        }
        this.mode = 'unknown';
      }
    }
    if (this.mode === 'legacy') return this.postLegacy(msg, body, gen);
    if (this.mode === 'modern') return this.postModern(msg, gen);
    return this.postStreamable(msg, body, gen);
  }

  // ---- 2026-07-28 ---------------------------------------------------------------------------------

  /** The discover result when the server offers 2026-07-28; undefined when not (a 2025 or HTTP+SSE server) or unreachable. */
  private async discover(clientInfo: unknown, gen: number): Promise<JsonObject | undefined> {
    const ac = this.track(new AbortController());
    try {
      // bounded like the reachability probe: a server that hangs on an unknown method must not eat the handshake's time
      const timeoutMs = Math.min(this.settings.headersTimeoutMs, PROBE_HEADERS_TIMEOUT_MS);
      return await discover(this.url, this.headers, await this.agent(), timeoutMs, this.settings.maxMessageBytes, discoverRequest(`fluidmcp-discover-${gen}`, clientInfo), ac.signal);
    } catch (err) {
      this.log.debug({ error: describe(err) }, 'server/discover failed; trying initialize');
      return undefined;
    } finally {
      this.inFlight.delete(ac);
    }
  }

  /** Sends one message in the 2026-07-28 way: requests with their envelope; no handshake, no answers to the server. */
  private async postModern(msg: JsonObject, gen: number): Promise<void> {
    if (isRequest(msg)) {
      const modern = withEnvelope(msg, this.clientInfo);
      return this.postStreamable(msg, JSON.stringify(modern), gen, modernHeaders(modern));
    }
    if (msg.method === 'notifications/cancelled') {
      // a modern request is cancelled by closing its stream
      const params = isObject(msg.params) ? msg.params : {};
      this.modernCalls.get(params.requestId)?.abort();
      return;
    }
    // notifications/initialized and the like have no 2026-07-28 counterpart; a modern server sends no requests to answer
    this.log.debug({ method: msg.method }, 'not sent to a 2026-07-28 server: the message has no counterpart there');
  }

  private async postStreamable(msg: JsonObject, body: string, gen: number, eraHeaders: Record<string, string> = {}): Promise<void> {
    const session = msg.method === 'initialize' ? undefined : this.sessionId;
    const headers: Record<string, string> = {
      ...this.sessionHeaders(session),
      ...eraHeaders,
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
    };
    const ac = this.track(new AbortController());
    const modernId = this.mode === 'modern' && isRequest(msg) ? msg.id : undefined;
    if (modernId !== undefined) this.modernCalls.set(modernId, ac);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.url, {
        dispatcher: await this.agent(),
        method: 'POST',
        headers,
        body,
        signal: ac.signal,
        // a JSON answer comes with its headers only when the call is done
        headersTimeout: this.settings.requestTimeoutMs,
        bodyTimeout: this.settings.requestTimeoutMs,
      });
    } catch (err) {
      this.inFlight.delete(ac);
      if (modernId !== undefined) this.modernCalls.delete(modernId);
      // stopped, or the call was cancelled (only 2026-07-28 calls are aborted one by one)
      if (this.stopped || ac.signal.aborted) return;
      this.failRequest(msg, gen, `cannot reach ${this.url.href}: ${describe(err)}`);
      this.lost(err as Error, gen);
      return;
    }
    try {
      const status = res.statusCode;
      if (msg.method === 'initialize' && this.mode === 'unknown' && FALLBACK_STATUSES.has(status)) {
        await res.body.dump().catch(() => undefined);
        return await this.fallBackToLegacy(msg, body, gen, status);
      }
      if (status >= 200 && status < 300) {
        if (msg.method === 'initialize') {
          this.mode = 'streamable';
          this.sessionId = headerValue(res.headers['mcp-session-id']);
        }
        // an initialize answered by something that is not an MCP server: say where to look
        const advice = msg.method === 'initialize' ? `: check that mcpServers.${this.name}.url is the MCP endpoint of an MCP server (often a path ending in /mcp), not another page or API` : '';
        try {
          const unanswered = await readPostAnswer(res, msg, this.settings.maxMessageBytes, (m) => this.deliver(m, gen));
          if (unanswered) this.failRequest(msg, gen, `${unanswered}${advice}`);
        } catch (err) {
          if (!this.stopped) this.failRequest(msg, gen, `unreadable answer: ${describe(err)}${advice}`);
        }
        return;
      }
      const text = await readText(res.body, 64 * 1024).catch(() => '');
      if (session !== undefined && (status === 404 || (status === 400 && /session/i.test(text)))) {
        // the server no longer knows our session: it restarted or expired it
        this.failRequest(msg, gen, `the remote server ended the session (HTTP ${status})`);
        this.sessionLost(new Error(`the remote server ${this.url.href} ended the session (HTTP ${status})`), gen);
        return;
      }
      const answer = parseJson(text);
      if (isRequest(msg) && answer && answer.id === msg.id && answer.error !== undefined) {
        this.deliver(answer, gen);
        return;
      }
      this.failRequest(msg, gen, `the remote server answered HTTP ${status}${text ? `: ${snippet(text)}` : ''}`);
      if (!isRequest(msg)) this.log.warn({ status, method: msg.method }, 'the remote server refused a message');
    } finally {
      this.inFlight.delete(ac);
      if (modernId !== undefined) this.modernCalls.delete(modernId);
    }
  }

  private deliver(message: JsonObject, gen: number): void {
    if (gen !== this.generation || this.stopped) return;
    if (message.id !== undefined && message.id === this.initializeId && isObject(message.result)) {
      const version = message.result.protocolVersion;
      if (typeof version === 'string') this.protocolVersion = version;
    }
    this.listener?.message(message);
  }

  /** Answers a request the server will never answer, so the caller does not wait for its timeout. */
  private failRequest(msg: JsonObject, gen: number, why: string): void {
    if (!isRequest(msg) || gen !== this.generation || this.stopped) return;
    this.listener?.message({
      jsonrpc: '2.0',
      id: msg.id,
      error: { code: TRANSPORT_ERROR, message: `Remote server "${this.name}" (${this.url.href}): ${why}` },
    });
  }

  private sessionHeaders(session: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { ...this.headers };
    if (session !== undefined) {
      headers['mcp-session-id'] = session;
      if (this.protocolVersion) headers['mcp-protocol-version'] = this.protocolVersion;
    }
    return headers;
  }

  private track(ac: AbortController): AbortController {
    this.inFlight.add(ac);
    return ac;
  }

  // ---- the server-to-client stream of Streamable HTTP ---------------------------------------------

  private openListenStream(gen: number): void {
    if (this.stopped || gen !== this.generation || this.mode !== 'streamable' || !this.sessionId || this.listen) return;
    const session = this.sessionId;
    const stream: ListenStream = new ListenStream(this.url, this.agent, this.settings, this.log, () => this.sessionHeaders(session), {
      message: (m) => this.deliver(m, gen),
      lost: (err) => this.lost(err, gen),
      sessionLost: (err) => this.sessionLost(err, gen),
      ended: () => {
        if (this.listen === stream) this.listen = undefined;
      },
    });
    this.listen = stream;
    void stream.open();
  }

  // ---- 2024-11-05 HTTP+SSE ------------------------------------------------------------------------

  private async fallBackToLegacy(msg: JsonObject, body: string, gen: number, status: number): Promise<void> {
    this.log.info({ status }, 'the remote server refused Streamable HTTP initialize; trying the HTTP+SSE transport');
    this.mode = 'legacy';
    try {
      await this.connectLegacy(gen);
    } catch (err) {
      this.mode = 'unknown';
      this.failRequest(msg, gen, `it speaks neither Streamable HTTP (initialize answered HTTP ${status}) nor HTTP+SSE (${describe(err)})`);
      return;
    }
    await this.postLegacy(msg, body, gen);
  }

  /** Opens the HTTP+SSE stream and resolves once the `endpoint` event names where to POST. */
  private connectLegacy(gen: number): Promise<void> {
    this.legacy?.close();
    const connection = new HttpSseConnection(this.url, this.headers, this.agent, this.settings);
    this.legacy = connection;
    return connection.open(
      (message) => this.deliver(message, gen),
      // an HTTP+SSE session lives as long as its stream
      (err) => {
        if (!this.stopped && this.legacy === connection) this.lost(err, gen);
      },
    );
  }

  private async postLegacy(msg: JsonObject, body: string, gen: number): Promise<void> {
    if (!this.legacy?.endpoint) {
      if (msg.method !== 'initialize') {
        this.failRequest(msg, gen, 'the event stream is not connected');
        return;
      }
      try {
        await this.connectLegacy(gen);
      } catch (err) {
        this.failRequest(msg, gen, `cannot open the event stream: ${describe(err)}`);
        this.lost(err as Error, gen);
        return;
      }
    }
    const connection = this.legacy!;
    const ac = this.track(new AbortController());
    try {
      const { status, text } = await connection.post(body, ac.signal);
      if (status < 200 || status >= 300) {
        this.failRequest(msg, gen, `the message endpoint answered HTTP ${status}${text ? `: ${snippet(text)}` : ''}`);
        if (!isRequest(msg)) this.log.warn({ status, method: msg.method }, 'the remote server refused a message');
      }
    } catch (err) {
      if (this.stopped) return;
      this.failRequest(msg, gen, `cannot reach ${connection.endpoint!.href}: ${describe(err)}`);
      this.lost(err as Error, gen);
    } finally {
      this.inFlight.delete(ac);
    }
  }

  // ---- losing and finding the server ---------------------------------------------------------------

  /** The server cannot be reached: report it, then reconnect with backoff. */
  private lost(err: Error, gen: number): void {
    if (this.stopped || gen !== this.generation || this.statusValue.state !== 'up') return;
    this.forgetSession();
    this.statusValue.state = 'down';
    this.statusValue.lastError = describe(err);
    this.log.warn({ error: describe(err) }, 'lost the remote server; reconnecting');
    this.listener?.down(errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(this.name, `lost ${this.url.href}: ${describe(err)}`), true);
    this.scheduleReconnect(0);
  }

  /** The server is there but forgot our session: report it and come back at once for a new handshake. */
  private sessionLost(err: Error, gen: number): void {
    if (this.stopped || gen !== this.generation || this.statusValue.state !== 'up') return;
    this.forgetSession();
    this.statusValue.state = 'down';
    this.statusValue.lastError = err.message;
    this.log.warn({ error: err.message }, 'the remote session ended; starting a new one');
    this.listener?.down(errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(this.name, err.message), true);
    this.reconnectTimer = setTimeout(() => this.cameBack(), 0);
  }

  private forgetSession(): void {
    this.generation++;
    this.sessionId = undefined;
    this.protocolVersion = undefined;
    this.listen?.close();
    this.listen = undefined;
    this.legacy?.close();
    this.legacy = undefined;
    this.modernCalls.clear();
    for (const ac of this.inFlight) ac.abort();
    this.inFlight.clear();
    this.gate = Promise.resolve();
  }

  private scheduleReconnect(attempt: number): void {
    if (this.stopped) return;
    const delay = backoff(this.settings.reconnect, attempt);
    this.reconnectTimer = setTimeout(() => {
      const gen = this.generation;
      this.probe(gen).then(
        () => this.cameBack(),
        (err: FluidError) => {
          if (this.stopped || gen !== this.generation) return;
          this.statusValue.lastError = err.message;
          if (attempt + 1 >= this.settings.reconnect.maxAttempts) {
            this.statusValue.state = 'failed';
            this.log.error({ error: err.message, attempts: attempt + 1 }, 'gave up reconnecting to the remote server');
            this.listener?.down(err, false);
            return;
          }
          this.scheduleReconnect(attempt + 1);
        },
      );
    }, delay);
  }

  private cameBack(): void {
    if (this.stopped) return;
    this.statusValue.restarts++;
    this.statusValue.state = 'up';
    this.log.info('the remote server is reachable again');
    this.listener?.up();
  }

  /** Resolves once the server answers over HTTP (any status); rejects naming the URL and the cause. */
  private async probe(gen: number): Promise<void> {
    try {
      if (this.mode === 'legacy') {
        await this.connectLegacy(gen);
        return;
      }
      const res = await request(this.url, {
        dispatcher: await this.agent(),
        method: 'OPTIONS',
        headers: this.headers,
        headersTimeout: Math.min(this.settings.headersTimeoutMs, PROBE_HEADERS_TIMEOUT_MS),
        bodyTimeout: PROBE_HEADERS_TIMEOUT_MS,
      });
      await res.body.dump().catch(() => undefined);
    } catch (err) {
      throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(
        this.name,
        `cannot reach ${this.url.href} (${describe(err)}): check that the remote MCP server runs and that mcpServers.${this.name}.url is right`,
      );
    }
  }
}

