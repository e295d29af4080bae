import { Agent } from 'undici';
import { definePlugin, type AuthStrategy, type Identity, type Logger, type Plugin, type ServerDefinition } from '../../../index.js';
import { readClientCredentialsConfig, readClientSecretPair, type ClientCredentialsConfig } from './config.js';
import { TokenSource, type TokenSourceSettings } from './token-source.js';

export { readClientCredentialsConfig, type ClientCredentialsConfig, type ClientAuthMethod } from './config.js';
export { identityKeyOf, type HeldToken } from './token-source.js';

/** The key this strategy is registered under: `auth.type` "oauth2", `flow` "client_credentials". */
export const STRATEGY_KEY = 'oauth2/client_credentials';

export interface OAuth2ClientCredentialsOptions {
  /** where the variables named by `client_id_env` and `client_secret_env` are read (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** bound on each token request, ms (default 10 s) */
  timeoutMs?: number;
  /** a token is replaced this long before it expires, at most half its lifetime, ms (default 60 s) */
  refreshMarginMs?: number;
  /** how long a token that came without `expires_in` is used, ms (default 5 min) */
  defaultLifetimeMs?: number;
}

class ClientCredentialsStrategy implements AuthStrategy {
  readonly key = STRATEGY_KEY;
  readonly sources = new Map<string, TokenSource>();
  private readonly configs = new Map<string, ClientCredentialsConfig>();

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly settings: TokenSourceSettings,
    private readonly dispatcher: () => Agent,
    private readonly log: Logger,
  ) {}

  validate(server: ServerDefinition): void {
    this.configs.set(server.name, readClientCredentialsConfig(server));
  }

  /** Reads the client's id and secret at start: without them no call could succeed. */
  setup(server: ServerDefinition): void {
    const config = this.configs.get(server.name) ?? readClientCredentialsConfig(server);
    const client = readClientSecretPair(server, config, this.env);
    const { protocol, hostname } = new URL(config.tokenUrl);
    if (protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(hostname)) {
      this.log.warn({ server: server.name }, 'auth.token_url uses plain http on a non-loopback host: the client secret and tokens would cross the network unencrypted');
    }
    this.sources.set(server.name, new TokenSource(server, config, client, this.settings, this.dispatcher, this.log.child({ server: server.name })));
  }

  banner(): { suffix: string; lines: string[] } {
    return { suffix: ' with OAuth client credentials', lines: ['  No login needed: the gateway gets and renews the token itself'] };
  }

  /** Every caller acts as the gateway's client: the identity is the current token's. */
  async authenticate(_ctx: unknown, server: ServerDefinition): Promise<Identity> {
    const token = await this.sources.get(server.name)!.token();
    // every caller acts as the gateway's client: sessions survive a token renewal and move to its process
    return { key: token.key, env: { [this.configs.get(server.name)!.envVarName]: token.value }, subject: 'client credentials', principal: 'client-credentials' };
  }
}

/**
 * OAuth 2.0 client credentials for servers whose auth block says `"type": "oauth2", "flow":
 * "client_credentials"`. The gateway gets a token from `token_url` with the client id and secret named by
 * `client_id_env` and `client_secret_env`, reuses it until shortly before it expires, and hands it to the
 * server process in `env_var_name`. Clients need no login. A new token means a new server process; the
 * proxy stops the old one once it is idle.
 */
export function oauth2ClientCredentials(options: OAuth2ClientCredentialsOptions = {}): Plugin {
  const settings: TokenSourceSettings = {
    timeoutMs: options.timeoutMs ?? 10_000,
    refreshMarginMs: options.refreshMarginMs ?? 60_000,
    defaultLifetimeMs: options.defaultLifetimeMs ?? 5 * 60_000,
  };
  return definePlugin({
    name: 'oauth2-client-credentials',
    register(api) {
      let agent: Agent | undefined;
      const dispatcher = (): Agent => (agent ??= new Agent({ connectTimeout: settings.timeoutMs, keepAliveTimeout: 4_000 }));
      const strategy = new ClientCredentialsStrategy(options.env ?? process.env, settings, dispatcher, api.log);
      api.authStrategies.register(STRATEGY_KEY, strategy);

      api.addHealth((server) => {
        const source = strategy.sources.get(server.name);
        if (!source) return {};
        const held = source.current;
        return { token: held ? { identity: held.key, refresh_in_s: Math.max(0, Math.round((held.refreshAt - Date.now()) / 1000)) } : 'not requested yet', token_requests: source.requests };
      });
      api.addHook('onClose', async () => {
        const closing = agent;
        agent = undefined;
        await closing?.destroy();
      });
    },
  });
}

/** The plugin with its defaults, for `--plugin` and `"plugins"` lists that take a named export. */
export const plugin: Plugin = oauth2ClientCredentials();

export default oauth2ClientCredentials;
