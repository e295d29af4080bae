import { timingSafeEqual } from 'node:crypto';
import { definePlugin, errors, type AuthStrategy, type Identity, type Logger, type Plugin, type RequestContext, type ServerDefinition } from '../../../index.js';
import { digestOf, parseKeys, readApiKeyConfig, type ApiKeyConfig, type ApiKeyEntry } from './config.js';

export { readApiKeyConfig, parseKeys, type ApiKeyConfig, type ApiKeyEntry } from './config.js';

/** The key this strategy is registered under: `auth.type` "api_key", no flow. */
export const STRATEGY_KEY = 'api_key';

export interface ApiKeyAuthOptions {
  /** where the variables named by `keys_env` are read (default process.env) */
  env?: NodeJS.ProcessEnv;
}

const BEARER = /^Bearer +(\S+) *$/i;

/** The key a request presents: X-API-Key first, then `Authorization: Bearer`; null when malformed. */
function presentedKey(ctx: RequestContext): string | undefined | null {
  const header = ctx.req.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header.trim();
  const authorization = ctx.req.headers.authorization;
  if (authorization === undefined || authorization === '') return undefined;
  return BEARER.exec(authorization)?.[1] ?? null;
}

/**
 * Compares against every key, always all of them, each in constant time. Digests have one length, so
 * neither the time taken nor an early exit tells a caller how close a guess was or which key matched.
 */
function callerOf(keys: readonly ApiKeyEntry[], presented: string): string | undefined {
  const digest = digestOf(presented);
  let caller: string | undefined;
  for (const entry of keys) {
    if (timingSafeEqual(entry.digest, digest)) caller ??= entry.name;
  }
  return caller;
}

class ApiKeyStrategy implements AuthStrategy {
  readonly key = STRATEGY_KEY;
  private readonly configs = new Map<string, ApiKeyConfig>();
  private readonly keys = new Map<string, ApiKeyEntry[]>();

  constructor(private readonly env: NodeJS.ProcessEnv, private readonly log: Logger) {}

  validate(server: ServerDefinition): void {
    this.configs.set(server.name, readApiKeyConfig(server));
  }

  /** Reads the keys once at start: a server nobody can call is a start-up error, not a stream of 401s. */
  setup(server: ServerDefinition): void {
    const config = this.configs.get(server.name) ?? readApiKeyConfig(server);
    const keys = parseKeys(server, config, this.env[config.keysEnv]);
    this.keys.set(server.name, keys);
    this.log.info({ server: server.name, callers: new Set(keys.map((k) => k.name)).size }, 'API keys loaded');
  }

  banner(server: ServerDefinition): { suffix: string; lines: string[] } {
    return { suffix: ' with API key auth', lines: [`  Send "X-API-Key: <key>" or "Authorization: Bearer <key>" to /${server.name}/mcp`] };
  }

  authenticate(ctx: RequestContext, server: ServerDefinition): Identity {
    const presented = presentedKey(ctx);
    if (presented === undefined) {
      throw this.unauthorized(ctx, server, `"${server.name}" needs an API key: send it as "X-API-Key: <key>" or "Authorization: Bearer <key>"`);
    }
    if (presented === null) {
      throw this.unauthorized(ctx, server, `The Authorization header for "${server.name}" is not "Bearer <key>": send the API key as "X-API-Key: <key>" or "Authorization: Bearer <key>"`);
    }
    const caller = callerOf(this.keys.get(server.name) ?? [], presented);
    if (caller === undefined) {
      this.log.debug({ server: server.name }, 'unknown API key refused');
      throw this.unauthorized(ctx, server, `The API key sent to "${server.name}" is not valid: check it, or ask the gateway's operator for one`);
    }
    const { identityEnv } = this.configs.get(server.name)!;
    return { key: digestOf(caller).toString('hex'), env: { [identityEnv]: caller }, subject: caller };
  }

  private unauthorized(ctx: RequestContext, server: ServerDefinition, message: string): Error {
    ctx.res.setHeader('www-authenticate', `Bearer realm="${server.name}"`);
    return errors.FMCP_ERR_UNAUTHORIZED(message);
  }
}

/**
 * API keys for servers whose auth block says `"type": "api_key"`. The keys come from the environment
 * variable named by `keys_env` (`name:key,name:key`); a caller sends one as `X-API-Key` or as a Bearer
 * token, and the server process that serves it gets the caller's name in `identity_env` (default
 * `FMCP_CALLER`). Each caller has its own server process.
 */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): Plugin {
  return definePlugin({
    name: 'api-key',
    register(api) {
      api.authStrategies.register(STRATEGY_KEY, new ApiKeyStrategy(options.env ?? process.env, api.log));
    },
  });
}

/** The plugin with its defaults, for `--plugin` and `"plugins"` lists that take a named export. */
export const plugin: Plugin = apiKeyAuth();

export default apiKeyAuth;
