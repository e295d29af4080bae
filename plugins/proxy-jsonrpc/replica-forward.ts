import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { sendJson, type EventBus, type ForwardOutcome, type Logger, type ReplicaDirectory, type RequestContext } from '../../core/index.js';
import { withTimeout } from './dispatcher.js';
import { errorResponse, INVALID_REQUEST } from './jsonrpc.js';

/**
 * "Any replica" for MRTR (mrtr-bridge.ts): a call waiting for the client's input lives in the replica that
 * started it, and its `requestState` names that replica. A retry that reaches another replica is sent on to
 * the holder, whose URL comes only from the shared replica directory (never from the request), with the
 * same path, headers and body, plus a hop header so it is never forwarded twice. The hop carries no
 * privilege: the holder authenticates the request and checks the requestState's signature as for any other.
 */

/** Set on a forwarded request to the id of the replica that forwarded it. */
export const HOP_HEADER = 'fluidmcp-forwarded-by';

/** Headers of one connection, not of the request: never passed on (RFC 9110 7.6.1), content-length recomputed. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'expect']);
/** Connection errors that mean nothing listens at the holder's registered address any more. */
const GONE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'CONNECT_TIMEOUT']);

export interface ForwardSettings {
  /** bound on reading the holder's URL from the directory, ms */
  readonly lookupTimeoutMs: number;
  /** bound on connecting to the holder, ms */
  readonly connectTimeoutMs: number;
  /** bound on silence from the holder (before its answer, and between events of its stream), ms */
  readonly idleTimeoutMs: number;
}

const RETRY_HINT = 'retry the original request without requestState';

export class RetryForwarder {
  /** no keep-alive: a reused socket the holder just closed would fail a retry that never reached it */
  private readonly agents = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) };
  private readonly inFlight = new Set<ClientRequest>();

  constructor(
    private readonly directory: () => ReplicaDirectory | undefined,
    private readonly events: EventBus,
    private readonly log: Logger,
    private readonly settings: ForwardSettings,
  ) {}

  /** Answers `ctx`: the holder's answer, piped through, or a JSON-RPC error saying why it cannot be reached. */
  async forward(ctx: RequestContext, server: string, holder: string, id: unknown): Promise<void> {
    const fail = (outcome: ForwardOutcome, message: string): void => {
      this.events.emit('replica.forwarded', { server, outcome });
      if (!ctx.res.headersSent) sendJson(ctx.res, 200, errorResponse(id, INVALID_REQUEST, `Invalid Request: ${message}`));
      else ctx.res.destroy();
    };
    const directory = this.directory();
    const hop = ctx.req.headers[HOP_HEADER];
    if (hop !== undefined) {
      this.log.warn({ server, holder, from: String(hop) }, 'a forwarded MRTR retry reached a replica that does not hold its call: check each replica\'s --replica-url');
      fail('failed', `requestState names replica "${holder}", but the replica "${String(hop)}" forwarded it to "${directory?.self ?? 'this gateway'}": the replicas' registered URLs are wrong (see --replica-url in docs/deploy.md); ${RETRY_HINT}`);
      return;
    }
    if (!directory) {
      fail('failed', `requestState was issued by replica "${holder}", and this gateway has no replica directory to find it (replicas need --replica-id and a shared --state-store redis://…); ${RETRY_HINT}`);
      return;
    }
    let base: string | undefined;
    try {
      base = await withTimeout(directory.lookup(holder), this.settings.lookupTimeoutMs, `Looking up replica "${holder}" in the shared store`);
    } catch (err) {
      this.log.warn({ server, holder, error: (err as Error).message }, 'could not look up the replica that holds an MRTR call');
      fail('failed', `the replica "${holder}" that holds the call this requestState continues could not be looked up (${(err as Error).message}); retry this request in a moment, or ${RETRY_HINT}`);
      return;
    }
    if (base === undefined) {
      fail('holder_gone', `the replica "${holder}" that holds the call this requestState continues is gone (it is no longer registered: it stopped or was removed); ${RETRY_HINT}`);
      return;
    }
    await this.send(ctx, server, holder, directory.self, base, fail);
  }

  /** Ends forwarded requests still open (gateway stop). */
  stop(): void {
    for (const req of this.inFlight) req.destroy(new Error('the gateway is stopping'));
    this.inFlight.clear();
  }

  private send(ctx: RequestContext, server: string, holder: string, self: string, base: string, fail: (outcome: ForwardOutcome, message: string) => void): Promise<void> {
    const target = new URL(base);
    target.pathname = `${target.pathname.replace(/\/+$/, '')}${ctx.path}`;
    target.search = ctx.query.size > 0 ? `?${ctx.query.toString()}` : '';
    const body = ctx.body ?? Buffer.alloc(0);
    const headers = passOn(ctx.req.headers) as OutgoingHttpHeaders;
    headers[HOP_HEADER] = self;
    headers['content-length'] = String(body.length);
    const https = target.protocol === 'https:';
    return new Promise<void>((resolve) => {
      let answered = false;
      const req = (https ? httpsRequest : httpRequest)(target, { method: 'POST', headers, agent: https ? this.agents.https : this.agents.http });
      this.inFlight.add(req);
      const done = (): void => {
        this.inFlight.delete(req);
        resolve();
      };
      let connectTimer: NodeJS.Timeout | undefined;
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(() => req.destroy(Object.assign(new Error(`no connection within ${this.settings.connectTimeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })), this.settings.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(connectTimer));
      });
      req.setTimeout(this.settings.idleTimeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${this.settings.idleTimeoutMs} ms`), { code: 'IDLE_TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(connectTimer);
        if (answered) {
          ctx.res.destroy();
          done();
          return;
        }
        const gone = GONE_CODES.has(err.code ?? '');
        this.log.warn({ server, holder, url: target.origin, error: err.message }, gone ? 'the replica that holds an MRTR call is gone' : 'forwarding an MRTR retry to the replica that holds its call failed');
        fail(gone ? 'holder_gone' : 'failed', gone
          ? `the replica "${holder}" that holds the call this requestState continues is gone (it no longer accepts connections at the address it registered; if it is running, its --replica-url is wrong: the log names the address); ${RETRY_HINT}`
          : `the replica "${holder}" that holds the call this requestState continues did not answer (${err.message}); ${RETRY_HINT}`);
        done();
      });
      req.once('close', () => {
        if (!answered) done();
      });
      req.on('response', (upstream) => {
        answered = true;
        clearTimeout(connectTimer);
        this.events.emit('replica.forwarded', { server, outcome: 'forwarded' });
        this.log.debug({ server, holder, status: upstream.statusCode }, 'forwarded an MRTR retry to the replica that holds its call');
        ctx.res.writeHead(upstream.statusCode ?? 502, passOn(upstream.headers) as OutgoingHttpHeaders);
        ctx.res.flushHeaders();
        upstream.pipe(ctx.res);
        upstream.once('error', () => ctx.res.destroy());
        upstream.once('end', done);
        upstream.once('close', done);
      });
      // the client went away: so does the forwarded request, and the holder cancels the call (spec cancellation)
      ctx.res.once('close', () => {
        if (!ctx.res.writableFinished) req.destroy();
      });
      req.end(body);
    });
  }
}

/** The end-to-end headers of a message (Host and Authorization included: the holder checks them as the first replica did). */
function passOn(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const connectionNamed = String(headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim());
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionNamed.includes(name)) continue;
    out[name] = value;
  }
  return out;
}
