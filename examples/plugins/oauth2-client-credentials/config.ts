import { isHttpUrl, serverFieldError, type ServerDefinition } from '../../../index.js';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

/** The `auth` block of a server with `"type": "oauth2", "flow": "client_credentials"`, once validated. */
export interface ClientCredentialsConfig {
  readonly tokenUrl: string;
  readonly clientIdEnv: string;
  readonly clientSecretEnv: string;
  /** the variable the server process gets the access token in */
  readonly envVarName: string;
  readonly scopes: readonly string[];
  /** more form parameters of the token request, such as `audience` */
  readonly extraParams: Readonly<Record<string, string>>;
  readonly method: ClientAuthMethod;
}

/** The client as the provider knows it, read from the environment at start. */
export interface ClientSecretPair {
  readonly clientId: string;
  readonly clientSecret: string;
}

const FIELDS = ['type', 'flow', 'token_url', 'client_id_env', 'client_secret_env', 'env_var_name', 'scopes', 'extra_params', 'token_endpoint_auth_method'];
const METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];
/** Parameters the plugin sets itself; extra_params may not replace them. */
const RESERVED = ['grant_type', 'client_id', 'client_secret', 'scope'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads and checks a server's auth block; every error names the field and says what to write. */
export function readClientCredentialsConfig(server: ServerDefinition): ClientCredentialsConfig {
  const auth = (server.entry.auth ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(auth).find((field) => !FIELDS.includes(field));
  if (unknown !== undefined) {
    throw serverFieldError(server, `auth.${unknown}`, `unknown field for "oauth2" with "client_credentials" (known: ${FIELDS.join(', ')})`);
  }
  if (!isHttpUrl(auth.token_url)) throw serverFieldError(server, 'auth.token_url', 'expected the URL of the provider\'s token endpoint, such as "https://provider.example/oauth/token"');
  const envName = (field: string, example: string): string => {
    const value = auth[field];
    if (typeof value !== 'string' || !ENV_NAME.test(value)) throw serverFieldError(server, `auth.${field}`, `expected the name of an environment variable, such as "${example}"`);
    return value;
  };
  const clientIdEnv = envName('client_id_env', 'REPORTS_CLIENT_ID');
  const clientSecretEnv = envName('client_secret_env', 'REPORTS_CLIENT_SECRET');
  const envVarName = envName('env_var_name', 'REPORTS_ACCESS_TOKEN');

  const scopes = auth.scopes ?? [];
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || s === '' || /\s/.test(s))) {
    throw serverFieldError(server, 'auth.scopes', 'expected a list of scope strings without spaces, such as ["reports.read"]');
  }
  const extra = auth.extra_params ?? {};
  if (!isObject(extra) || Object.values(extra).some((v) => typeof v !== 'string')) {
    throw serverFieldError(server, 'auth.extra_params', 'expected an object of string values, such as {"audience": "https://api.example"}');
  }
  const reserved = Object.keys(extra).find((k) => RESERVED.includes(k));
  if (reserved) throw serverFieldError(server, `auth.extra_params.${reserved}`, `"${reserved}" is set by the gateway itself: remove it`);
  const method = auth.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!METHODS.includes(method as ClientAuthMethod)) {
    throw serverFieldError(server, 'auth.token_endpoint_auth_method', `expected ${METHODS.map((m) => `"${m}"`).join(' or ')} (the client credentials grant needs a secret)`);
  }
  return {
    tokenUrl: auth.token_url,
    clientIdEnv,
    clientSecretEnv,
    envVarName,
    scopes: scopes as string[],
    extraParams: extra as Record<string, string>,
    method: method as ClientAuthMethod,
  };
}

/** Reads the client id and secret from the variables the auth block names. */
export function readClientSecretPair(server: ServerDefinition, config: ClientCredentialsConfig, env: NodeJS.ProcessEnv): ClientSecretPair {
  const read = (field: string, variable: string, what: string): string => {
    const value = env[variable];
    if (!value) throw serverFieldError(server, `auth.${field}`, `${what} not found: the environment variable ${variable} is not set. Run export ${variable}="<your ${what.replace('_', ' ')}>" and restart FluidMCP`);
    return value;
  };
  return {
    clientId: read('client_id_env', config.clientIdEnv, 'client_id'),
    clientSecret: read('client_secret_env', config.clientSecretEnv, 'client_secret'),
  };
}
