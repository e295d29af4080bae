import { serverFieldError, isHttpUrl, type ServerDefinition } from '../../core/index.js';

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** The names of the `${VAR}` references in a value. */
export function envReferences(value: string): string[] {
  return [...value.matchAll(REFERENCE)].map((m) => m[1]!);
}

/** Replaces every `${VAR}` with its value; a missing variable is reported through `missing`. */
export function expandEnv(value: string, env: Readonly<Record<string, string | undefined>>, missing: (name: string) => never): string {
  return value.replace(REFERENCE, (_whole, name: string) => env[name] ?? missing(name));
}

/**
 * Checks a remote server entry at start: the URL, and that every `${VAR}` in `headers` will have a value.
 * A variable named by `auth.env_var_name` is filled per caller (their token), so it counts as known.
 */
export function validateRemoteEntry(server: ServerDefinition, processEnv: NodeJS.ProcessEnv = process.env): void {
  const entry = server.entry;
  if (!isHttpUrl(entry.url)) throw serverFieldError(server, 'url', 'expected an http(s) URL of the remote MCP endpoint, for example https://example.com/mcp');
  const perCaller = typeof entry.auth?.env_var_name === 'string' ? entry.auth.env_var_name : undefined;
  for (const [header, value] of Object.entries(entry.headers ?? {})) {
    for (const name of envReferences(value)) {
      if (name === perCaller || entry.env?.[name] !== undefined || processEnv[name] !== undefined) continue;
      throw serverFieldError(server, `headers.${header}`, `refers to \${${name}}, which is not set: export ${name}=... before starting the gateway, or add it to mcpServers.${server.name}.env`);
    }
  }
}

/** The entry's headers with variables expanded from the process, the entry's env and the caller's env. */
export function remoteHeaders(server: ServerDefinition, callerEnv: Readonly<Record<string, string>>, processEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env = { ...processEnv, ...server.entry.env, ...callerEnv };
  const headers: Record<string, string> = {};
  for (const [header, value] of Object.entries(server.entry.headers ?? {})) {
    headers[header.toLowerCase()] = expandEnv(value, env, (name) => {
      throw serverFieldError(server, `headers.${header}`, `refers to \${${name}}, which is not set: export ${name}=... before starting the gateway`);
    });
  }
  return headers;
}
