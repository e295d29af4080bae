import { errors, isLoopback, type PendingStateStore, type PluginApi, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { AuthorizationServer } from './authorization-server.js';
import { ClientMetadataDocuments, type ClientMetadataOptions } from './client-metadata.js';
import { checkRedirectUris, ClientRegistration } from './client-registration.js';
import type { PkceAuthConfig } from './config.js';
import type { LoginFlow } from './login-flow.js';
import { OAuthError, sendOAuthError } from './oauth-error.js';
import { PackageUrls, ResourceServer } from './resource-server.js';
import { STRATEGY_KEY, type PkceStrategy } from './strategy.js';
import { TokenGrant } from './token-grant.js';
import type { TokenSeal } from './token-seal.js';

export interface AuthorizationRoutesOptions {
  readonly seal: TokenSeal;
  readonly strategy: PkceStrategy;
  readonly loginFlow: LoginFlow;
  readonly store: () => PendingStateStore;
  readonly providerTimeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
  /** Client ID Metadata Documents: false to refuse URL client ids */
  readonly clientMetadataDocuments: false | Partial<Omit<ClientMetadataOptions, 'loopbackAllowed' | 'checkRedirectUris'>>;
}

/**
 * Makes every oauth2/pkce package an MCP authorization server of its own (MCP authorization spec,
 * 2025-06-18 onward): metadata documents, registration, authorization and token endpoints, and the
 * strategy's check of the sealed tokens they issue.
 */
export function mountAuthorizationServer(api: PluginApi, options: AuthorizationRoutesOptions): void {
  const { seal, strategy, loginFlow, store } = options;
  const urls = new PackageUrls(() => api.kernel.publicUrl());
  const configOf = (server: ServerDefinition): PkceAuthConfig => strategy.configOf(server);
  const resourceServer = new ResourceServer(urls, seal, configOf);
  const documents = options.clientMetadataDocuments === false ? undefined : new ClientMetadataDocuments({
    timeoutMs: 5000,
    maxBytes: 64 * 1024,
    perHostPerMinute: 30,
    defaultCacheMs: 5 * 60_000,
    allowHosts: [],
    ...options.clientMetadataDocuments,
    loopbackAllowed: () => isLoopback(api.kernel.address().host),
    checkRedirectUris,
  });
  if (documents) api.addHook('onClose', () => documents.close());
  const clients = new ClientRegistration(urls, seal, documents);
  const authorization = new AuthorizationServer(urls, seal, clients, loginFlow, store,
    { providerTimeoutMs: options.providerTimeoutMs, env: options.env, codeTtlS: 60, consentTtlS: 600, events: api.events }, api.log);
  const tokens = new TokenGrant(urls, seal, clients, store, { providerTimeoutMs: options.providerTimeoutMs, env: options.env }, api.log);

  strategy.sealedAccess = resourceServer;
  loginFlow.continueAuthorization = (ctx, server, config, pending) => authorization.continueFromProvider(ctx, server, config, pending);

  /** The package named in the path, if it has an oauth2/pkce block; 404 otherwise (nothing to discover). */
  const packageOf = (ctx: RequestContext): { server: ServerDefinition; config: PkceAuthConfig } => {
    const name = ctx.params.name!;
    const server = api.servers.get(name);
    if (!server || server.auth !== STRATEGY_KEY) {
      throw errors.FMCP_ERR_NOT_FOUND(ctx.method, `${ctx.path} (no package "${name}" with an oauth2/pkce auth block is served here)`);
    }
    return { server, config: configOf(server) };
  };
  /** OAuth endpoints answer protocol errors in the RFC's shape, never the gateway's. */
  const oauthJson = (work: (ctx: RequestContext, server: ServerDefinition, config: PkceAuthConfig) => Promise<void>) => async (ctx: RequestContext): Promise<void> => {
    const { server, config } = packageOf(ctx);
    try {
      await work(ctx, server, config);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      ctx.log.info({ server: server.name, error: err.error }, 'OAuth request refused');
      sendOAuthError(ctx.res, err);
    }
  };

  const protectedResource = (ctx: RequestContext): void => resourceServer.metadata(ctx, packageOf(ctx).server);
  const asMetadata = (ctx: RequestContext): void => {
    const { server, config } = packageOf(ctx);
    authorization.metadata(ctx, server, config);
  };
  api.route({ method: 'GET', path: '/.well-known/oauth-protected-resource/:name/mcp', handler: protectedResource });
  for (const path of [
    '/.well-known/oauth-authorization-server/:name',
    '/.well-known/openid-configuration/:name',
    '/:name/.well-known/oauth-authorization-server',
    '/:name/.well-known/openid-configuration',
  ]) {
    api.route({ method: 'GET', path, handler: asMetadata });
  }
  api.route({ method: 'POST', path: '/:name/register', bodyLimit: 16 * 1024, handler: oauthJson((ctx, server) => clients.register(ctx, server)) });
  api.route({ method: 'GET', path: '/:name/authorize', handler: (ctx) => {
    const { server, config } = packageOf(ctx);
    return authorization.authorize(ctx, server, config);
  } });
  api.route({ method: 'POST', path: '/:name/authorize', bodyLimit: 16 * 1024, handler: (ctx) => {
    const { server, config } = packageOf(ctx);
    return authorization.decide(ctx, server, config);
  } });
  api.route({ method: 'POST', path: '/:name/token', bodyLimit: 64 * 1024, handler: oauthJson((ctx, server, config) => tokens.token(ctx, server, config)) });
}
