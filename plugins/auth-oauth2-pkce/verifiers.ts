import type { Identity, JsonObject, ServerDefinition } from '../../core/index.js';
import type { PkceAuthConfig } from './config.js';
import type { TokenCheck } from './token-check.js';
import type { VerificationPlans } from './verification.js';

/** A Bearer token as presented, with its hash (the identity key: never the token itself). */
export interface PresentedToken {
  readonly value: string;
  readonly hash: string;
}

/**
 * What a verifier says of a token: an identity when it vouches for it, `rejected` (a sentence for the
 * 401) when it knows the token is bad, undefined when the token is not its to judge. `scopes`: what the
 * token was granted, when the verifier knows it (introspection); the strategy then checks the required ones.
 */
export type Verdict = { readonly identity: Identity; readonly scopes?: readonly string[] } | { readonly rejected: string } | undefined;

/** One link of the strategy's chain: the first verifier with a verdict decides. */
export interface TokenVerifier {
  readonly name: string;
  verify(token: PresentedToken, server: ServerDefinition, config: PkceAuthConfig): Verdict | Promise<Verdict>;
}

/** The identity of a caller holding a provider token: one process per token, the token in `env_var_name`. */
export function providerTokenIdentity(config: PkceAuthConfig, token: PresentedToken, subject: string | undefined, quota?: Identity['quota']): Identity {
  return { key: token.hash, env: { [config.envVarName]: token.value }, subject: subject ?? `token ${token.hash.slice(0, 8)}`, ...(quota ? { quota } : {}) };
}

/** The provider confirms the token at `validate_url`, or at its userinfo or introspection endpoint (cached). */
export function providerConfirmed(plans: VerificationPlans, tokenCheck: TokenCheck): TokenVerifier {
  return {
    name: 'provider',
    async verify(token, server, config) {
      const plan = plans.planOf(server);
      if (plan?.mode !== 'provider') return undefined;
      const verdict = await tokenCheck.check(server.name, plan.endpoint, token.value, token.hash);
      if (!verdict.accepted) return { rejected: `The provider rejected the token sent to "${server.name}" (it may have expired or been revoked)` };
      return { identity: providerTokenIdentity(config, token, verdict.subject), ...(verdict.scopes ? { scopes: verdict.scopes } : {}) };
    },
  };
}

/**
 * With `"validate": "none"`, a token this gateway itself received from the provider's token endpoint
 * (at /auth/callback or /auth/refresh) is genuine: such callers keep the common process share.
 */
export function handedOut(plans: VerificationPlans, issued: IssuedTokens): TokenVerifier {
  return {
    name: 'handed-out',
    verify(token, server, config) {
      if (plans.planOf(server)?.mode !== 'none' || !issued.has(server.name, token.hash)) return undefined;
      return { identity: providerTokenIdentity(config, token, undefined) };
    },
  };
}

/** With `"validate": "none"`, any other token is served, from a small process share of its own. */
export function unverified(plans: VerificationPlans): TokenVerifier {
  return {
    name: 'unverified',
    verify(token, server, config) {
      if (plans.planOf(server)?.mode !== 'none') return undefined;
      return { identity: providerTokenIdentity(config, token, `unverified ${token.hash.slice(0, 8)}`, { name: 'unverified', max: plans.unverifiedProcesses }) };
    },
  };
}

/**
 * Hashes of access tokens the gateway handed out, until they expire (at most `maxAgeMs`), bounded in
 * number (the oldest go first). In memory: another replica does not know them.
 */
export class IssuedTokens {
  private readonly expiries = new Map<string, number>();

  constructor(private readonly maxEntries: number, private readonly maxAgeMs: number) {}

  remember(server: string, hash: string, tokenData: JsonObject): void {
    const lifetime = typeof tokenData.expires_in === 'number' && tokenData.expires_in > 0 ? tokenData.expires_in * 1000 : this.maxAgeMs;
    const key = `${server}\u0000${hash}`;
    this.expiries.delete(key);
    this.expiries.set(key, Date.now() + Math.min(lifetime, this.maxAgeMs));
    while (this.expiries.size > this.maxEntries) this.expiries.delete(this.expiries.keys().next().value as string);
  }

  has(server: string, hash: string): boolean {
    const key = `${server}\u0000${hash}`;
    const expires = this.expiries.get(key);
    if (expires === undefined) return false;
    if (expires > Date.now()) return true;
    this.expiries.delete(key);
    return false;
  }

  clear(): void {
    this.expiries.clear();
  }
}
