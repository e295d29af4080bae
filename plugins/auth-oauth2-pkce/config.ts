import { isHttpUrl, serverFieldError, type ServerDefinition } from '../../core/index.js';

export type TokenEndpointAuthMethod = 'client_secret_post' | 'client_secret_basic' | 'none';

/** The `auth` block of a server with `type: "oauth2"`, `flow: "pkce"`, once validated. */
export interface PkceAuthConfig {
  readonly authorizationUrl: string;
  readonly tokenUrl: string;
  readonly scopes: readonly string[];
  /**
   * scopes a token must have been granted, where the gateway knows what was granted (its sealed tokens,
   * introspection); one missing is a 403 `insufficient_scope` (step-up). Default: `scopes`
   */
  readonly requiredScopes: readonly string[];
  readonly clientIdEnv: string;
  readonly clientSecretEnv?: string;
  readonly envVarName: string;
  readonly extraParams: Readonly<Record<string, string>>;
  /** unset: client_secret_post when a secret is set, none otherwise */
  readonly tokenEndpointAuthMethod?: TokenEndpointAuthMethod;
  readonly validateUrl?: string;
  /** "none": tokens are accepted without asking the provider (set knowingly; the banner says so) */
  readonly validate?: 'none';
}

/** Parameters the gateway sets itself; extra_params may not replace them. */
const RESERVED_PARAMS = ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method'];
const AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['client_secret_post', 'client_secret_basic', 'none'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads and checks a server's auth block; throws a config error naming the field and the fix. */
export function readAuthConfig(server: ServerDefinition): PkceAuthConfig {
  const auth = (server.entry.auth ?? {}) as Record<string, unknown>;
  const url = (field: string, required: boolean): string | undefined => {
    const value = auth[field];
    if (value === undefined && !required) return undefined;
    if (!isHttpUrl(value)) throw serverFieldError(server, `auth.${field}`, `expected a URL such as "https://provider.example/oauth/${field === 'token_url' ? 'token' : 'authorize'}"`);
    return value;
  };
  const envName = (field: string, required: boolean): string | undefined => {
    const value = auth[field];
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string' || !ENV_NAME.test(value)) {
      throw serverFieldError(server, `auth.${field}`, 'expected the name of an environment variable, such as "GOOGLE_CLIENT_ID"');
    }
    return value;
  };

  const authorizationUrl = url('authorization_url', true)!;
  const tokenUrl = url('token_url', true)!;
  const validateUrl = url('validate_url', false);

  const scopes = auth.scopes ?? [];
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || s === '' || /\s/.test(s))) {
    throw serverFieldError(server, 'auth.scopes', 'expected a list of scope strings without spaces, such as ["openid", "email"]');
  }

  const required = auth.required_scopes ?? scopes;
  if (auth.required_scopes !== undefined && (!Array.isArray(required) || required.some((s) => typeof s !== 'string' || s === '' || /[\s"\\]/.test(s)))) {
    throw serverFieldError(server, 'auth.required_scopes', 'expected a list of scope strings without spaces or quotes, such as ["openid", "email"], or [] to check no scope');
  }

  const clientIdEnv = envName('client_id_env', true)!;
  const clientSecretEnv = envName('client_secret_env', false);
  const envVarName = envName('env_var_name', true)!;

  const extra = auth.extra_params ?? {};
  if (!isObject(extra) || Object.values(extra).some((v) => typeof v !== 'string')) {
    throw serverFieldError(server, 'auth.extra_params', 'expected an object of string values, such as {"access_type": "offline"}');
  }
  const reserved = Object.keys(extra).find((k) => RESERVED_PARAMS.includes(k));
  if (reserved) throw serverFieldError(server, `auth.extra_params.${reserved}`, `"${reserved}" is set by the gateway itself: remove it`);

  const method = auth.token_endpoint_auth_method;
  if (method !== undefined && !AUTH_METHODS.includes(method as TokenEndpointAuthMethod)) {
    throw serverFieldError(server, 'auth.token_endpoint_auth_method', `expected one of ${AUTH_METHODS.map((m) => `"${m}"`).join(', ')}`);
  }
  if ((method === 'client_secret_post' || method === 'client_secret_basic') && !clientSecretEnv) {
    throw serverFieldError(server, 'auth.client_secret_env', `"${method}" sends a client secret: name the environment variable that holds it`);
  }

  const validate = auth.validate;
  if (validate !== undefined && validate !== 'none') {
    throw serverFieldError(server, 'auth.validate', 'expected "none" (accept tokens without asking the provider), or leave it out to have every token verified');
  }
  if (validate === 'none' && validateUrl !== undefined) {
    throw serverFieldError(server, 'auth.validate', '"none" turns verification off, yet auth.validate_url is set: remove one of them');
  }

  return {
    authorizationUrl,
    tokenUrl,
    scopes: scopes as string[],
    requiredScopes: [...new Set(required as string[])],
    clientIdEnv,
    clientSecretEnv,
    envVarName,
    extraParams: extra as Record<string, string>,
    tokenEndpointAuthMethod: method as TokenEndpointAuthMethod | undefined,
    validateUrl,
    validate,
  };
}
