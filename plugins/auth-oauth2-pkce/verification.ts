import { serverFieldError, type Logger, type ServerDefinition } from '../../core/index.js';
import type { PkceAuthConfig } from './config.js';
import { discoverProvider, type Discovery, type ProviderMetadata } from './discovery.js';
import type { TokenEndpoint } from './token-check.js';

/** How the tokens of one server are verified, decided at start-up. */
export type VerificationPlan =
  | { readonly mode: 'provider'; readonly endpoint: TokenEndpoint; readonly source?: string }
  | { readonly mode: 'none' };

export interface VerificationPlansOptions {
  readonly env: NodeJS.ProcessEnv;
  /** bound on each metadata request at start-up, ms */
  readonly discoveryTimeoutMs: number;
  /** processes shared by callers with unverified tokens, per server with `"validate": "none"` */
  readonly unverifiedProcesses: number;
}

/**
 * Decides, for each server at start-up, how its Bearer tokens are verified: `validate_url` when set;
 * else the provider's own userinfo (OpenID Connect) or introspection (RFC 7662) endpoint, found in the
 * metadata published at the issuer of `authorization_url`; else start-up stops with the fix. With
 * `"validate": "none"` nothing is asked and the banner says so.
 */
export class VerificationPlans {
  private readonly plans = new Map<string, VerificationPlan>();
  private readonly discoveries = new Map<string, Promise<Discovery>>();

  constructor(private readonly options: VerificationPlansOptions, private readonly log: Logger) {}

  get unverifiedProcesses(): number {
    return this.options.unverifiedProcesses;
  }

  planOf(server: ServerDefinition): VerificationPlan | undefined {
    return this.plans.get(server.name);
  }

  async setup(server: ServerDefinition, config: PkceAuthConfig): Promise<void> {
    const plan = await this.decide(server, config);
    this.plans.set(server.name, plan);
    if (plan.mode === 'none') {
      this.log.warn({ server: server.name }, `tokens sent to "${server.name}" are not verified ("validate": "none")`);
    } else {
      this.log.info({ server: server.name, endpoint: plan.endpoint.url, kind: plan.endpoint.kind }, 'tokens are verified by the provider');
    }
  }

  /** The start-up banner's line about verification. */
  describe(server: ServerDefinition): string | undefined {
    const plan = this.plans.get(server.name);
    if (!plan) return undefined;
    if (plan.mode === 'none') {
      return `  WARNING: tokens are NOT verified ("validate": "none"): any Bearer token is accepted and reaches the server. Callers whose token this gateway did not hand out share ${this.options.unverifiedProcesses} processes`;
    }
    return `  Tokens verified at ${plan.endpoint.name} ${plan.endpoint.url}${plan.source ? ` (found in ${plan.source})` : ''}`;
  }

  clear(): void {
    this.discoveries.clear();
  }

  private async decide(server: ServerDefinition, config: PkceAuthConfig): Promise<VerificationPlan> {
    if (config.validate === 'none') return { mode: 'none' };
    if (config.validateUrl) return { mode: 'provider', endpoint: { kind: 'bearer', url: config.validateUrl, name: 'auth.validate_url' } };
    let discovery = this.discoveries.get(config.authorizationUrl);
    if (!discovery) {
      discovery = discoverProvider(config.authorizationUrl, this.options.discoveryTimeoutMs);
      this.discoveries.set(config.authorizationUrl, discovery);
    }
    const found = await discovery;
    const plan = this.choose(found.found, config);
    if (plan) return plan;
    throw serverFieldError(
      server,
      'auth',
      `cannot verify the Bearer tokens of "${server.name}": ${whyNot(found, config)}. Set auth.validate_url to an endpoint that answers 2xx for a good token (such as the provider's userinfo or tokeninfo endpoint), or set "validate": "none" to accept unverified tokens knowingly`,
    );
  }

  /** Introspection when the gateway holds a client secret (it answers for any token), else userinfo when the token carries "openid". */
  private choose(found: readonly ProviderMetadata[], config: PkceAuthConfig): VerificationPlan | undefined {
    const clientId = this.options.env[config.clientIdEnv];
    const clientSecret = config.clientSecretEnv ? this.options.env[config.clientSecretEnv] : undefined;
    if (clientId && clientSecret) {
      for (const m of found) {
        if (!m.introspectionEndpoint) continue;
        const method = introspectionMethod(config, m.introspectionAuthMethods);
        if (!method) continue;
        return {
          mode: 'provider',
          source: m.source,
          endpoint: { kind: 'introspection', url: m.introspectionEndpoint, name: "the provider's introspection endpoint", clientId, clientSecret, method },
        };
      }
    }
    if (!config.scopes.includes('openid')) return undefined;
    const withUserinfo = found.find((m) => m.userinfoEndpoint);
    if (!withUserinfo) return undefined;
    return { mode: 'provider', source: withUserinfo.source, endpoint: { kind: 'bearer', url: withUserinfo.userinfoEndpoint!, name: "the provider's userinfo endpoint" } };
  }
}

function introspectionMethod(config: PkceAuthConfig, supported: readonly string[] | undefined): 'client_secret_basic' | 'client_secret_post' | undefined {
  const allowed = (m: string): boolean => supported === undefined || supported.includes(m);
  const wanted = config.tokenEndpointAuthMethod;
  if ((wanted === 'client_secret_basic' || wanted === 'client_secret_post') && allowed(wanted)) return wanted;
  if (allowed('client_secret_basic')) return 'client_secret_basic';
  if (allowed('client_secret_post')) return 'client_secret_post';
  return undefined;
}

function whyNot(discovery: Discovery, config: PkceAuthConfig): string {
  if (discovery.found.length === 0) {
    const { reachable, tried } = discovery as Extract<Discovery, { reachable: boolean }>;
    const where = `${tried[0]}${tried.length > 1 ? ` and ${tried.length - 1} more` : ''}`;
    return reachable
      ? `its provider publishes no OpenID or RFC 8414 metadata naming ${config.authorizationUrl} as its authorization endpoint (tried ${where})`
      : `its provider's metadata could not be read: nothing answered at ${where}`;
  }
  const m = discovery.found[0]!;
  const userinfo = discovery.found.find((d) => d.userinfoEndpoint)?.userinfoEndpoint;
  const introspection = discovery.found.find((d) => d.introspectionEndpoint)?.introspectionEndpoint;
  const parts: string[] = [];
  if (userinfo) parts.push(`its userinfo endpoint ${userinfo} answers only tokens with the "openid" scope, which auth.scopes does not ask for`);
  if (introspection) parts.push(`its introspection endpoint ${introspection} needs the client secret (auth.client_secret_env, exported)`);
  if (parts.length === 0) parts.push(`${m.source} names neither a userinfo nor an introspection endpoint`);
  return parts.join('; ');
}
