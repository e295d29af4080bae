import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ANONYMOUS, type Identity, type RequestContext } from './contracts.js';

/**
 * The RequestContext of one request. A class rather than a literal so that every context has the
 * same shape, and the query string is parsed only when a handler reads `query` (most never do).
 */
export class Context implements RequestContext {
  readonly method: string;
  params: Readonly<Record<string, string>> = NO_PARAMS;
  body: Buffer | undefined = undefined;
  identity: Identity = ANONYMOUS;
  route: string | undefined = undefined;
  private stateValue: Record<string, unknown> | undefined = undefined;
  private queryValue: URLSearchParams | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly path: string,
    private readonly search: string,
    readonly log: Logger,
  ) {
    this.method = req.method ?? 'GET';
  }

  get query(): URLSearchParams {
    return (this.queryValue ??= new URLSearchParams(this.search));
  }

  get state(): Record<string, unknown> {
    return (this.stateValue ??= {});
  }
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
