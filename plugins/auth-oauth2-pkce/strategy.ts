import { errors, type AuthStrategy, type EventBus, type Identity, type Logger, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { readAuthConfig, type PkceAuthConfig } from './config.js';
import { tokenKey } from './pkce.js';
import type { SealedAccess } from './resource-server.js';
import { insufficientScope, missingScopes } from './step-up.js';
import type { VerificationPlans } from './verification.js';
import { providerTokenIdentity, type PresentedToken, type TokenVerifier } from './verifiers.js';

export const STRATEGY_KEY = 'oauth2/pkce';

/** RFC 6750 section 2.1: `Bearer` and a b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The `oauth2`/`pkce` auth strategy: checks each server's auth block at start, decides how its tokens are
 * verified, and turns a request's Bearer token into an identity whose server process gets the token in
 * `env_var_name`. Nothing is served or started for a token no verifier of the chain vouched for.
 */
export class PkceStrategy implements AuthStrategy {
  readonly key = STRATEGY_KEY;
  private readonly configs = new Map<string, PkceAuthConfig>();
  /** the gateway's own sealed tokens and challenge parameters, when it is the package's authorization server */
  sealedAccess?: SealedAccess;

  /**
   * @param verifiers asked in order; the first with a verdict decides, and a token none vouches for is
   *   refused (sealed tokens the gateway issued would come first, then the provider-confirmed ones)
   */
  constructor(
    private readonly loginUrl: (server: ServerDefinition) => string,
    private readonly plans: VerificationPlans,
    private readonly verifiers: readonly TokenVerifier[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
    private readonly events?: EventBus,
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

  async setup(server: ServerDefinition): Promise<void> {
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
    await this.plans.setup(server, config);
  }

  banner(server: ServerDefinition, publicUrl: string): { suffix: string; lines: string[] } {
    const verification = this.plans.describe(server);
    return { suffix: ' with OAuth support', lines: [`  Login: ${publicUrl}/${server.name}/auth/login`, ...(verification ? [verification] : [])] };
  }

  async authenticate(ctx: RequestContext, server: ServerDefinition): Promise<Identity> {
    const config = this.configOf(server);
    const token = this.presentedToken(ctx, server);
    // a token this gateway sealed is checked cryptographically and needs nobody else's verdict
    const sealed = await this.sealedAccess?.open(token.value, server);
    if (sealed !== undefined) {
      if (!sealed.ok) throw this.rejected(ctx, server, sealed.why);
      this.requireScopes(ctx, server, config, sealed.scopes);
      return providerTokenIdentity(config, { value: sealed.providerToken, hash: tokenKey(sealed.providerToken) }, undefined);
    }
    for (const verifier of this.verifiers) {
      const verdict = await verifier.verify(token, server, config);
      if (verdict === undefined) continue;
      if ('rejected' in verdict) {
        this.log.debug({ server: server.name, identity: token.hash.slice(0, 12), verifier: verifier.name }, 'token rejected');
        throw this.rejected(ctx, server, verdict.rejected);
      }
      if (verdict.scopes) this.requireScopes(ctx, server, config, verdict.scopes);
      this.log.trace({ server: server.name, identity: token.hash.slice(0, 12), subject: verdict.identity.subject, verifier: verifier.name }, 'bearer accepted');
      return verdict.identity;
    }
    throw this.rejected(ctx, server, `The token sent to "${server.name}" could not be verified`);
  }

  /** The Bearer token of the request (RFC 6750 section 2.1), or a 401 without one. */
  private presentedToken(ctx: RequestContext, server: ServerDefinition): PresentedToken {
    const header = ctx.req.headers.authorization;
    if (header === undefined || header === '') {
      throw this.unauthorized(ctx, server, undefined, `"${server.name}" needs a Bearer token`);
    }
    const value = BEARER.exec(header)?.[1];
    if (!value) {
      throw this.unauthorized(ctx, server, 'invalid_request', `The Authorization header for "${server.name}" is not "Bearer <access_token>"`);
    }
    return { value, hash: tokenKey(value) };
  }

  /** A 403 insufficient_scope (step-up) when a token was granted less than the block requires. */
  private requireScopes(ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig, granted: readonly string[]): void {
    const missing = missingScopes(config, granted);
    if (missing.length === 0) return;
    this.log.debug({ server: server.name, missing }, 'token refused: insufficient scope');
    throw insufficientScope(ctx, server, config, granted, missing, { resourceMetadata: this.sealedAccess?.resourceMetadata(server), loginUrl: this.loginUrl(server) });
  }

  /** 401 invalid_token, counted as `auth.rejected`. */
  private rejected(ctx: RequestContext, server: ServerDefinition, what: string): Error {
    this.events?.emit('auth.rejected', { server: server.name });
    return this.unauthorized(ctx, server, 'invalid_token', what);
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
