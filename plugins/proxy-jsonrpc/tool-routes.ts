import { sendJson, type JsonObject, type RequestContext } from '../../core/index.js';
import type { Channels } from './channels.js';
import { answerNestedTooDeeply, errorResponse, INVALID_PARAMS, INVALID_REQUEST, isNestedTooDeeply, isObject, NESTED_TOO_DEEPLY } from './jsonrpc.js';

/** The original FluidMCP convenience routes: `GET /{name}/mcp/tools/list`, `POST /{name}/mcp/tools/call`. */
export class ToolRoutes {
  private nextId = 1;
  constructor(private readonly channels: Channels) {}

  async list(ctx: RequestContext): Promise<void> {
    await this.forward(ctx, 'tools/list', {});
  }

  async call(ctx: RequestContext): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(ctx.body?.toString('utf8') || 'null');
    } catch {
      sendJson(ctx.res, 400, errorResponse(null, -32700, 'Parse error: the body is not valid JSON; send {"name": "<tool>", "arguments": {...}}'));
      return;
    }
    if (!isObject(body) || typeof body.name !== 'string') {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, 'Invalid body: send {"name": "<tool>", "arguments": {...}}'));
      return;
    }
    const extra = Object.keys(body).find((k) => k !== 'name' && k !== 'arguments');
    if (extra !== undefined) {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_REQUEST, `Invalid body: unexpected member ${JSON.stringify(extra)}; send only {"name": "<tool>", "arguments": {...}}`));
      return;
    }
    if (body.arguments !== undefined && !isObject(body.arguments)) {
      sendJson(ctx.res, 400, errorResponse(null, INVALID_PARAMS, `Invalid params: "arguments" must be an object of named arguments, got ${Array.isArray(body.arguments) ? 'an array' : body.arguments === null ? 'null' : `a ${typeof body.arguments}`} (MCP has no by-position arguments)`));
      return;
    }
    await this.forward(ctx, 'tools/call', { name: body.name, arguments: body.arguments ?? {} });
  }

  private async forward(ctx: RequestContext, method: string, params: JsonObject): Promise<void> {
    const abort = new AbortController();
    ctx.res.once('close', () => abort.abort());
    const response = await this.channels.call(ctx.params.name!, ctx.identity, { jsonrpc: '2.0', id: this.nextId++, method, params }, undefined, abort.signal);
    // the client's arguments nest too deeply to send on: its fault, not the server's
    if (isObject(response.error)) sendJson(ctx.res, response.error.message === NESTED_TOO_DEEPLY ? 400 : 502, { error: response.error });
    else {
      try {
        sendJson(ctx.res, 200, response.result);
      } catch (err) {
        // the server's answer nests too deeply to serialize (nothing was written yet)
        if (!isNestedTooDeeply(err)) throw err;
        sendJson(ctx.res, 502, { error: answerNestedTooDeeply(response).error });
      }
    }
  }
}
