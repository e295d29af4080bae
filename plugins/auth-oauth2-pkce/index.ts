import { authKey, definePlugin, errors, MemoryStateStore, PENDING_STATE, type FluidError, type JsonObject, type PendingStateStore, type Plugin, type ServerDefinition, type ServerEntry } from '../../core/index.js';
import { mountAuthorizationServer } from './authorization-routes.js';
import { LoginFlow } from './login-flow.js';
import { PkceStrategy, STRATEGY_KEY } from './strategy.js';
import { TokenCheck } from './token-check.js';
import { SealedStateStore } from './pending-seal.js';
import { TokenSeal } from './token-seal.js';
import { VerificationPlans } from './verification.js';
import { handedOut, IssuedTokens, providerConfirmed, unverified } from './verifiers.js';
import { tokenKey } from './pkce.js';

export { challengeS256, createState, createVerifier, tokenKey, VERIFIER_PATTERN } from './pkce.js';
export { readAuthConfig, type PkceAuthConfig, type TokenEndpointAuthMethod } from './config.js';
export { SUCCESS_MESSAGE, REFRESH_MESSAGE } from './login-flow.js';
export { STRATEGY_KEY };
export { providerTokenIdentity, type PresentedToken, type TokenVerifier, type Verdict } from './verifiers.js';
export { TokenSeal } from './token-seal.js';

/**
 * A shared pending-state store (Redis, for replicas) keeps each login's PKCE verifier sealed with the token
 * key, so every replica needs the same configured key: the error to stop start-up with when an oauth2/pkce
 * server has none (`keyGiven`: a key was configured), else undefined. The CLI's dry run asks the same.
 */
export function sharedStoreKeyMissing(keyGiven: boolean, entries: readonly ServerEntry[]): FluidError | undefined {
  if (keyGiven || !entries.some((e) => authKey(e) === STRATEGY_KEY)) return undefined;
  return errors.FMCP_ERR_CONFIG_INVALID('--token-key / FMCP_TOKEN_KEYS', 'not given',
    'a shared pending-state store (--state-store) keeps each login\'s PKCE verifier, which the gateway encrypts with its token key first: give every replica the same key with --token-key or FMCP_TOKEN_KEYS (make one with: openssl rand -hex 32)');
}

export interface AuthOAuth2PkceOptions {
  /** how long a started login may take before its callback, ms (default 10 minutes) */
  pendingLoginTtlMs?: number;
  /** most logins in flight when this plugin provides the store; beyond it the oldest is dropped (default 1000) */
  maxPendingLogins?: number;
  /** bound on each call to a provider's token or validation endpoint, ms (default 10 s) */
  providerTimeoutMs?: number;
  /** how long a provider's verdict on a token is reused, ms (default 60 s): a revoked token stops working within it */
  validationCacheMs?: number;
  /** most verdicts kept (default 10,000; the oldest go first) */
  maxCachedVerdicts?: number;
  /** bound on each request for the provider's metadata at start-up, ms (default 5 s) */
  discoveryTimeoutMs?: number;
  /** with `"validate": "none"`: processes shared by callers whose token the gateway did not hand out, per server (default 4) */
  unverifiedProcesses?: number;
  /** where client ids and secrets are read from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /**
   * make each package an MCP authorization server of its own, issuing sealed tokens to MCP clients
   * (default true; see docs/oauth.md)
   */
  authorizationServer?: boolean;
  /**
   * keys that seal the gateway's tokens, 32 bytes each as base64url or hex; the first seals, all open.
   * Default: FMCP_TOKEN_KEYS (comma-separated) from `env`, else a random key made at start.
   */
  tokenKeys?: readonly string[];
  /**
   * Client ID Metadata Documents (client ids that are HTTPS URLs): on by default; false turns them off.
   * `allowHosts` lists hosts that may be fetched from private or loopback addresses (loopback is allowed
   * anyway when the gateway listens on loopback); `timeoutMs` (5 s), `maxBytes` (64 KiB),
   * `perHostPerMinute` (30) and `defaultCacheMs` (5 min) bound the fetches.
   */
  clientMetadataDocuments?: false | { allowHosts?: readonly string[]; timeoutMs?: number; maxBytes?: number; perHostPerMinute?: number; defaultCacheMs?: number };
}

/**
 * OAuth 2.0 authorization code flow with PKCE, hosted by the gateway, for servers whose auth block says
 * `"type": "oauth2", "flow": "pkce"`. Mounts GET /{name}/auth/login, GET /{name}/auth/callback and
 * POST /{name}/auth/refresh, and guards the server's routes with `Authorization: Bearer <token>`,
 * verified before anything is served or started (`validate_url`, else the provider's userinfo or
 * introspection endpoint from its metadata, else start-up stops; `"validate": "none"` knowingly); the
 * token reaches the server process as the variable named by `env_var_name`. Tokens are handed to the
 * client and never kept. Pending logins go to the PENDING_STATE store (an in-memory one unless another
 * plugin provides it).
 */
export function authOAuth2Pkce(options: AuthOAuth2PkceOptions = {}): Plugin {
  const pendingLoginTtlMs = options.pendingLoginTtlMs ?? 10 * 60_000;
  const maxPendingLogins = options.maxPendingLogins ?? 1000;
  const providerTimeoutMs = options.providerTimeoutMs ?? 10_000;
  const env = options.env ?? process.env;

  return definePlugin({
    name: 'auth-oauth2-pkce',
    register(api) {
      let store: PendingStateStore | undefined;
      const tokenCheck = new TokenCheck({ cacheMs: options.validationCacheMs ?? 60_000, maxEntries: options.maxCachedVerdicts ?? 10_000, timeoutMs: providerTimeoutMs });
      const plans = new VerificationPlans(
        { env, discoveryTimeoutMs: options.discoveryTimeoutMs ?? 5000, unverifiedProcesses: options.unverifiedProcesses ?? 4 },
        api.log,
      );
      const issued = new IssuedTokens(10_000, 24 * 3600_000);
      const publicUrl = (): string => api.kernel.publicUrl();
      const loginUrl = (server: ServerDefinition): string => `${publicUrl()}/${encodeURIComponent(server.name)}/auth/login`;
      // the first verifier with a verdict decides; a token none vouches for gets 401 and starts nothing
      const verifiers = [providerConfirmed(plans, tokenCheck), handedOut(plans, issued), unverified(plans)];
      const strategy = new PkceStrategy(loginUrl, plans, verifiers, env, api.log, api.events);
      const onHandedOut = (server: ServerDefinition, tokenData: JsonObject): void => {
        if (typeof tokenData.access_token === 'string') issued.remember(server.name, tokenKey(tokenData.access_token), tokenData);
      };
      const routes = new LoginFlow(api.servers, strategy, () => store!, publicUrl, { pendingLoginTtlMs, providerTimeoutMs, env, events: api.events, handedOut: onHandedOut }, api.log);

      api.authStrategies.register(STRATEGY_KEY, strategy, api.name);
      api.route({ method: 'GET', path: '/:name/auth/login', handler: (ctx) => routes.login(ctx) });
      api.route({ method: 'GET', path: '/:name/auth/callback', handler: (ctx) => routes.callback(ctx) });
      api.route({ method: 'POST', path: '/:name/auth/refresh', bodyLimit: 64 * 1024, handler: (ctx) => routes.refresh(ctx) });
      // seals the tokens MCP clients get and what goes to a shared pending-state store
      const seal = new TokenSeal(options.tokenKeys ?? TokenSeal.parseList(env.FMCP_TOKEN_KEYS));
      if (options.authorizationServer !== false) {
        mountAuthorizationServer(api, { seal, strategy, loginFlow: routes, store: () => store!, providerTimeoutMs, env, clientMetadataDocuments: options.clientMetadataDocuments ?? {} });
        api.addHook('onStart', () => {
          if (seal.ephemeral && api.servers.list().some((s) => s.auth === STRATEGY_KEY)) {
            api.log.warn('no token key given (--token-key or FMCP_TOKEN_KEYS): a random one was made, so the tokens MCP clients hold stop working when this process ends, and replicas do not accept each other\'s');
          }
        });
      }

      // after every plugin registered, so a plugin that provides a shared store wins over the in-memory one
      api.addHook('onStart', () => {
        const provided = api.tryResolve(PENDING_STATE);
        if (provided && !provided.shared) {
          store = provided;
        } else if (provided) {
          // a random key would seal what no other replica can open: a login would fail on the replica it comes back to
          const missing = sharedStoreKeyMissing(!seal.ephemeral, api.servers.list().map((s) => s.entry));
          if (missing) throw missing;
          store = new SealedStateStore(provided, seal);
        } else {
          store = new MemoryStateStore(maxPendingLogins);
          api.provide(PENDING_STATE, store);
        }
      });
      api.addHook('onClose', () => {
        tokenCheck.clear();
        issued.clear();
        plans.clear();
      });
      api.addHealth((server) => (server.auth === STRATEGY_KEY ? { login: loginUrl(server) } : {}));
    },
  });
}
