import { errors, type AuthStrategy, type Identity, type Logger, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { readAuthConfig, type PkceAuthConfig } from './config.js';
import { tokenKey } from './pkce.js';
import type { SealedAccess } from './resource-server.js';
import type { TokenCheck } from './token-check.js';

export const STRATEGY_KEY = 'oauth2/pkce';

/** RFC 6750 section 2.1: `Bearer` and a b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The `oauth2`/`pkce` auth strategy: checks each server's auth block at start and turns a request's
 * Bearer token into an identity whose server process gets the token in `env_var_name`.
 */
export class PkceStrategy implements AuthStrategy {
  readonly key = STRATEGY_KEY;
  private readonly configs = new Map<string, PkceAuthConfig>();
  /** the gateway's own sealed tokens and challenge parameters, when it is the package's authorization server */
  sealedAccess?: SealedAccess;

  constructor(
    private readonly loginUrl: (server: ServerDefinition) => string,
    private readonly tokenCheck: TokenCheck,
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
  ) {}

  /** The validated auth block of a server this strategy guards. */
  configOf(server: ServerDefinition): PkceAuthConfig {
    let config = this.configs.get(server.name);
    if (!config) {
      config = readAuthConfig(server);
      this.configs.set(server.name, config);
    }
    return config;
  }

  validate(server: ServerDefinition): void {
    this.configs.set(server.name, readAuthConfig(server));
  }

  setup(server: ServerDefinition): void {
    const config = this.configOf(server);
    if (!this.env[config.clientIdEnv]) {
      this.log.warn({ server: server.name, variable: config.clientIdEnv },
        `client_id not found: ${config.clientIdEnv} is not set, so logins to "${server.name}" will fail until it is exported and FluidMCP restarted`);
    }
    for (const [field, url] of [['authorization_url', config.authorizationUrl], ['token_url', config.tokenUrl]] as const) {
      const { protocol, hostname } = new URL(url);
      if (protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(hostname)) {
        this.log.warn({ server: server.name, field }, `auth.${field} uses plain http on a non-loopback host: codes and tokens would cross the network unencrypted`);
      }
    }
  }

  banner(server: ServerDefinition, publicUrl: string): { suffix: string; lines: string[] } {
    return { suffix: ' with OAuth support', lines: [`  Login: ${publicUrl}/${server.name}/auth/login`] };
  }

  async authenticate(ctx: RequestContext, server: ServerDefinition): Promise<Identity> {
    const config = this.configOf(server);
    const header = ctx.req.headers.authorization;
    if (header === undefined || header === '') {
      throw this.unauthorized(ctx, server, undefined, `"${server.name}" needs a Bearer token`);
    }
    const token = BEARER.exec(header)?.[1];
    if (!token) {
      throw this.unauthorized(ctx, server, 'invalid_request', `The Authorization header for "${server.name}" is not "Bearer <access_token>"`);
    }
    const sealed = await this.sealedAccess?.open(token, server);
    if (sealed !== undefined) {
      if (!sealed.ok) throw this.unauthorized(ctx, server, 'invalid_token', sealed.why);
      const providerKey = tokenKey(sealed.providerToken);
      return { key: providerKey, env: { [config.envVarName]: sealed.providerToken }, subject: `token ${providerKey.slice(0, 8)}` };
    }
    const key = tokenKey(token);
    let subject = `token ${key.slice(0, 8)}`;
    if (config.validateUrl) {
      const verdict = await this.tokenCheck.check(server.name, config.validateUrl, token, key);
      if (!verdict.accepted) {
        this.log.debug({ server: server.name, identity: key.slice(0, 12) }, 'token rejected by validate_url');
        throw this.unauthorized(ctx, server, 'invalid_token', `The provider rejected the token sent to "${server.name}" (it may have expired or been revoked)`);
      }
      if (verdict.subject) subject = verdict.subject;
    }
    this.log.trace({ server: server.name, identity: key.slice(0, 12), subject }, 'bearer accepted');
    return { key, env: { [config.envVarName]: token }, subject };
  }

  private unauthorized(ctx: RequestContext, server: ServerDefinition, error: string | undefined, what: string): Error {
    const challenge = [`realm="${server.name}"`];
    if (error) challenge.push(`error="${error}"`);
    if (this.sealedAccess) challenge.push(...this.sealedAccess.challenge(server));
    ctx.res.setHeader('www-authenticate', `Bearer ${challenge.join(', ')}`);
    return errors.FMCP_ERR_UNAUTHORIZED(
      `${what}: sign in at ${this.loginUrl(server)}, then send the access_token as "Authorization: Bearer <access_token>"`,
    );
  }
}
