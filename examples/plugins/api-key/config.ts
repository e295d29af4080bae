import { createHash } from 'node:crypto';
import { serverFieldError, type ServerDefinition } from '../../../index.js';

/** The `auth` block of a server with `"type": "api_key"`, once validated. */
export interface ApiKeyConfig {
  /** the environment variable that holds the keys, as `name:key,name:key` */
  readonly keysEnv: string;
  /** the variable the server process gets the caller's name in */
  readonly identityEnv: string;
}

/** One caller: a name the server may see, and a digest of the key (the key itself is not kept). */
export interface ApiKeyEntry {
  readonly name: string;
  readonly digest: Buffer;
}

const FIELDS = ['type', 'keys_env', 'identity_env'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CALLER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const MIN_KEY_LENGTH = 16;

export const digestOf = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Reads and checks a server's auth block; every error names the field and says what to write. */
export function readApiKeyConfig(server: ServerDefinition): ApiKeyConfig {
  const auth = (server.entry.auth ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(auth).find((field) => !FIELDS.includes(field));
  if (unknown !== undefined) {
    throw serverFieldError(server, `auth.${unknown}`, `unknown field for "api_key" (known: ${FIELDS.join(', ')})`);
  }
  const envName = (field: string, fallback?: string): string => {
    const value = auth[field] ?? fallback;
    if (typeof value !== 'string' || !ENV_NAME.test(value)) {
      throw serverFieldError(server, `auth.${field}`, `expected the name of an environment variable, such as "${field === 'keys_env' ? 'MY_SERVER_API_KEYS' : 'FMCP_CALLER'}"`);
    }
    return value;
  };
  return { keysEnv: envName('keys_env'), identityEnv: envName('identity_env', 'FMCP_CALLER') };
}

/**
 * Parses `name:key,name:key`. A name may have several keys (to rotate one), a key may not belong to two
 * names. Errors say which entry is wrong and never repeat a key.
 */
export function parseKeys(server: ServerDefinition, config: ApiKeyConfig, text: string | undefined): ApiKeyEntry[] {
  const fail = (problem: string): Error => serverFieldError(server, 'auth.keys_env', problem);
  if (text === undefined || text.trim() === '') {
    throw fail(`the environment variable ${config.keysEnv} is not set: export ${config.keysEnv}="alice:<key>,bob:<key>" (keys of at least ${MIN_KEY_LENGTH} characters, e.g. from \`openssl rand -hex 24\`) and restart FluidMCP`);
  }
  const entries: ApiKeyEntry[] = [];
  const owners = new Map<string, string>();
  text.split(',').forEach((raw, index) => {
    const at = `entry ${index + 1} of ${config.keysEnv}`;
    const item = raw.trim();
    const colon = item.indexOf(':');
    if (colon === -1) throw fail(`${at} is not "name:key"`);
    const name = item.slice(0, colon).trim();
    const key = item.slice(colon + 1).trim();
    if (!CALLER_NAME.test(name)) throw fail(`${at}: the name must be 1-64 letters, digits, ".", "_", "@" or "-" (the server sees it)`);
    if (key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
      throw fail(`${at} ("${name}"): the key must be at least ${MIN_KEY_LENGTH} characters without spaces, e.g. from \`openssl rand -hex 24\``);
    }
    const digest = digestOf(key);
    const hex = digest.toString('hex');
    const owner = owners.get(hex);
    if (owner !== undefined && owner !== name) throw fail(`${at} ("${name}") reuses the key of "${owner}": give each caller its own key`);
    owners.set(hex, name);
    entries.push({ name, digest });
  });
  return entries;
}
