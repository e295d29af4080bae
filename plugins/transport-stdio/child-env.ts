import { serverFieldError, type ServerDefinition } from '../../core/index.js';

/**
 * What every child gets from the gateway's environment, as the MCP SDK's getDefaultEnvironment() does:
 * enough to find programs, a home, a locale and a temp folder, nothing that could be a secret.
 */
export const DEFAULT_INHERITED_ENV: readonly string[] = process.platform === 'win32'
  ? ['APPDATA', 'HOMEDRIVE', 'HOMEPATH', 'LOCALAPPDATA', 'PATH', 'PATHEXT', 'PROCESSOR_ARCHITECTURE', 'SYSTEMDRIVE', 'SYSTEMROOT', 'TEMP', 'TMP', 'USERNAME', 'USERPROFILE', 'PROGRAMFILES', 'COMSPEC']
  : ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TMPDIR', 'TZ'];

/** The gateway's own settings: never handed to a child, even with `"inherit_env": true`. */
const GATEWAY_SETTING = /^FMCP_/;

/**
 * Variables an auth block names (`client_id_env`, `client_secret_env`, `keys_env`, `env_var_name`, any
 * `*_env` field): they hold the gateway's credentials or a caller's token, which reaches only its own
 * process through the identity's env.
 */
export function authVariables(servers: readonly ServerDefinition[]): Set<string> {
  return new Set(authVariableFields(servers).keys());
}

/** Each auth variable and the first field that names it, e.g. `MY_SECRET` → `mcpServers.gmail.auth.client_secret_env`. */
function authVariableFields(servers: readonly ServerDefinition[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const server of servers) {
    const auth = server.entry.auth as Record<string, unknown> | undefined;
    if (!auth) continue;
    for (const [field, value] of Object.entries(auth)) {
      if ((field.endsWith('_env') || field === 'env_var_name') && typeof value === 'string' && !names.has(value)) {
        names.set(value, `mcpServers.${server.name}.auth.${field}`);
      }
    }
  }
  return names;
}

/**
 * Refuses an `inherit_env` list that names a variable no child may get: one an auth block of any server
 * names, or a gateway setting (`FMCP_*`). One config error naming the entry, the variable and why;
 * `fluidmcp run` calls it with or without `--start-server`, and the transport again when it validates.
 */
export function checkInheritEnv(servers: readonly ServerDefinition[], among: readonly ServerDefinition[] = servers): void {
  const fields = authVariableFields(among);
  for (const server of servers) {
    const inherit = server.entry.inherit_env;
    if (!Array.isArray(inherit)) continue;
    for (const name of inherit as string[]) {
      const field = fields.get(name);
      if (field !== undefined) {
        throw serverFieldError(server, 'inherit_env', `"${name}" is named by an auth block (${field}): the gateway's credentials never reach a server process; put what the server needs in "env"`);
      }
      if (GATEWAY_SETTING.test(name)) {
        throw serverFieldError(server, 'inherit_env', `"${name}" is a setting of the gateway itself (FMCP_*): it never reaches a server process; remove it, or put what the server needs in "env"`);
      }
    }
  }
}

/**
 * A child's environment: the default names (or what `inherit_env` asks for) from the gateway's
 * environment, minus the gateway's settings and every auth block's variables; then the entry's `env`;
 * then the identity's (its own token variable). A bash function (`() {…`) is not passed, as in the SDK.
 */
export function childEnvironment(
  server: ServerDefinition,
  identityEnv: Readonly<Record<string, string>>,
  withheld: ReadonlySet<string>,
  source: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const inherit = server.entry.inherit_env;
  const names = inherit === true ? Object.keys(source) : [...DEFAULT_INHERITED_ENV, ...(Array.isArray(inherit) ? (inherit as string[]) : [])];
  const env: Record<string, string> = {};
  for (const name of names) {
    const value = source[name];
    if (value === undefined || value.startsWith('()') || withheld.has(name) || GATEWAY_SETTING.test(name)) continue;
    env[name] = value;
  }
  return Object.assign(env, server.entry.env, identityEnv);
}
