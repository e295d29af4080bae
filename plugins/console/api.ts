import {
  ANONYMOUS,
  errors,
  FluidError,
  sendJson,
  type AuthStrategy,
  type ChannelBroker,
  type Identity,
  type JsonObject,
  type RequestContext,
  type ServerActivity,
  type ServerCatalog,
  type ServerControl,
  type ServerDefinition,
  type StrategyRegistry,
} from '../../core/index.js';

/** the header that carries a server's own credentials through the console API (Authorization is the admin's) */
export const SERVER_AUTH_HEADER = 'x-server-authorization';
const NO_STORE = { 'cache-control': 'no-store' };
const MAX_PAGES = 20;

export interface ApiParts {
  readonly servers: ServerCatalog;
  readonly strategies: StrategyRegistry<AuthStrategy>;
  readonly channels: () => ChannelBroker | undefined;
  readonly control: () => ServerControl | undefined;
}

/** What /api tells about a server: names, kinds and numbers, never a secret, env value or header value. */
export interface ServerSummary extends Partial<ServerActivity> {
  name: string;
  transport: string;
  auth: string | null;
  login?: string;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The handlers of /api/servers/…: each a client of the gateway's own tokens. */
export class ConsoleApi {
  private nextId = 1;
  constructor(private readonly parts: ApiParts) {}

  server(name: string): ServerDefinition {
    const server = this.parts.servers.get(name);
    if (!server) throw errors.FMCP_ERR_UNKNOWN_SERVER(name, this.parts.servers.list().map((s) => `"${s.name}"`).join(', ') || 'no packages');
    return server;
  }

  summary(server: ServerDefinition): ServerSummary {
    const out: ServerSummary = { name: server.name, transport: server.transport, auth: server.auth ?? null };
    if (server.auth === 'oauth2/pkce') out.login = `/${encodeURIComponent(server.name)}/auth/login`;
    const control = this.parts.control();
    if (control) Object.assign(out, control.activity(server.name));
    return out;
  }

  list(ctx: RequestContext): void {
    sendJson(ctx.res, 200, { servers: this.parts.servers.list().map((s) => this.summary(s)) }, NO_STORE);
  }

  detail(ctx: RequestContext): void {
    const server = this.server(ctx.params.name!);
    const entry = server.entry;
    const config: JsonObject = {
      source: server.source,
      isolation: entry.isolation ?? 'shared',
      envNames: Object.keys(entry.env ?? {}),
    };
    if (entry.command !== undefined) config.command = entry.command;
    if (entry.url !== undefined) config.url = originOf(entry.url);
    if (entry.headers !== undefined) config.headerNames = Object.keys(entry.headers);
    if (entry.auth) {
      const { type, flow } = entry.auth;
      config.auth = { type, ...(flow !== undefined ? { flow } : {}), ...(Array.isArray(entry.auth.scopes) ? { scopes: entry.auth.scopes } : {}) };
    }
    sendJson(ctx.res, 200, { ...this.summary(server), config }, NO_STORE);
  }

  /** tools/list, resources/list or prompts/list, every page; a server without the feature gives an empty list. */
  async listOf(ctx: RequestContext, kind: 'tools' | 'resources' | 'prompts'): Promise<void> {
    const server = this.server(ctx.params.name!);
    const identity = await this.identity(ctx, server);
    const items: unknown[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await this.call(ctx, server, identity, `${kind}/list`, cursor !== undefined ? { cursor } : {});
      if (isObject(response.error)) {
        if (response.error.code === -32601 && page === 0) {
          sendJson(ctx.res, 200, { [kind]: [], supported: false }, NO_STORE);
          return;
        }
        throw upstreamError(server, response.error);
      }
      const result = isObject(response.result) ? response.result : {};
      if (Array.isArray(result[kind])) items.push(...(result[kind] as unknown[]));
      cursor = typeof result.nextCursor === 'string' && result.nextCursor !== '' ? result.nextCursor : undefined;
      if (cursor === undefined) break;
    }
    sendJson(ctx.res, 200, { [kind]: items, supported: true }, NO_STORE);
  }

  async callTool(ctx: RequestContext): Promise<void> {
    const server = this.server(ctx.params.name!);
    let args: unknown;
    try {
      args = JSON.parse(ctx.body?.toString('utf8') || '{}');
    } catch {
      throw errors.FMCP_ERR_BAD_REQUEST(`The body is not valid JSON: send the arguments of "${ctx.params.tool}" as a JSON object, such as {"message": "hi"}`);
    }
    if (!isObject(args)) throw errors.FMCP_ERR_BAD_REQUEST(`The body must be a JSON object of the arguments of "${ctx.params.tool}", such as {"message": "hi"}`);
    const identity = await this.identity(ctx, server);
    const response = await this.call(ctx, server, identity, 'tools/call', { name: ctx.params.tool!, arguments: args });
    if (isObject(response.error)) {
      const error = upstreamError(server, response.error);
      sendJson(ctx.res, error.statusCode, { error: { code: error.code, message: error.message, rpc: response.error } }, NO_STORE);
      return;
    }
    sendJson(ctx.res, 200, response.result ?? {}, NO_STORE);
  }

  async restart(ctx: RequestContext): Promise<void> {
    const server = this.server(ctx.params.name!);
    const outcome = await this.requireControl(server).restart(server.name);
    sendJson(ctx.res, 200, { server: server.name, restarted: true, ...outcome }, NO_STORE);
  }

  async stopInstance(ctx: RequestContext): Promise<void> {
    const server = this.server(ctx.params.name!);
    const id = ctx.params.id!;
    if (!(await this.requireControl(server).stopInstance(server.name, id))) {
      throw errors.FMCP_ERR_NOT_FOUND('POST', `${ctx.path} (server "${server.name}" has no process "${id}": see GET /api/servers/${server.name})`);
    }
    sendJson(ctx.res, 200, { server: server.name, instance: id, stopped: true }, NO_STORE);
  }

  private requireControl(server: ServerDefinition): ServerControl {
    const control = this.parts.control();
    if (!control) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, 'no plugin provides server control (load proxy-jsonrpc)');
    return control;
  }

  /**
   * The identity a call from the console acts as: anonymous for servers without auth; otherwise the
   * server's own strategy judges the credentials sent in X-Server-Authorization (as Authorization).
   */
  private async identity(ctx: RequestContext, server: ServerDefinition): Promise<Identity> {
    if (!server.auth) return ANONYMOUS;
    const strategy = this.parts.strategies.get(server.auth);
    if (!strategy) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, `no plugin handles auth "${server.auth}"`);
    const headers = { ...ctx.req.headers };
    delete headers.authorization;
    delete headers.cookie;
    const presented = ctx.req.headers[SERVER_AUTH_HEADER];
    if (typeof presented === 'string') headers.authorization = presented;
    const req = Object.create(ctx.req, { headers: { value: headers } }) as typeof ctx.req;
    try {
      return await strategy.authenticate({ ...ctx, req }, server);
    } catch (err) {
      if (err instanceof FluidError) {
        ctx.res.removeHeader('www-authenticate');
        if (err.statusCode === 401) {
          throw errors.FMCP_ERR_UNAUTHORIZED(`${err.message} (through the console API, send it as "X-Server-Authorization: Bearer <access_token>")`);
        }
        throw err;
      }
      throw errors.FMCP_ERR_PLUGIN_FAILED(this.parts.strategies.owner(server.auth) ?? 'unknown', `authenticate (server "${server.name}")`, err as Error);
    }
  }

  private call(ctx: RequestContext, server: ServerDefinition, identity: Identity, method: string, params: JsonObject): Promise<JsonObject> {
    const channels = this.parts.channels();
    if (!channels) throw errors.FMCP_ERR_UPSTREAM_UNAVAILABLE(server.name, 'no plugin provides client channels (load proxy-jsonrpc)');
    const abort = new AbortController();
    ctx.res.once('close', () => abort.abort());
    return channels.call(server.name, identity, { jsonrpc: '2.0', id: `console-${this.nextId++}`, method, params }, undefined, abort.signal);
  }
}

function upstreamError(server: ServerDefinition, error: JsonObject): FluidError {
  const said = `${String(error.message ?? 'error')} (JSON-RPC error ${String(error.code)})`;
  // the gateway's own errors already start with the server's (or group's) name: said once
  if (said.startsWith(`Server "${server.name}"`) || said.startsWith(`Group "${server.name}"`)) {
    return new FluidError(errors.FMCP_ERR_UPSTREAM.code, said, errors.FMCP_ERR_UPSTREAM.statusCode);
  }
  return errors.FMCP_ERR_UPSTREAM(server.name, said);
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}
