import { errors, type RequestContext, type ServerDefinition } from '../../core/index.js';
import type { PkceAuthConfig } from './config.js';

/** The scopes of an RFC 6749 `scope` value (space-separated), or none. */
export function scopesOf(scope: unknown): string[] {
  return typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '') : [];
}

/** The required scopes of the block that `granted` lacks, in the block's order. */
export function missingScopes(config: PkceAuthConfig, granted: readonly string[]): string[] {
  const have = new Set(granted);
  return config.requiredScopes.filter((s) => !have.has(s));
}

/**
 * What a client asks for when it authorizes again: the block's scopes (what the gateway asks the provider
 * for) and the required ones, so a step-up keeps what was granted (MCP "Scope Challenge Handling").
 */
export function stepUpScope(config: PkceAuthConfig): string {
  return [...new Set([...config.scopes, ...config.requiredScopes])].join(' ');
}

/**
 * RFC 6750 section 3.1: 403 with `WWW-Authenticate: Bearer error="insufficient_scope", scope=…,
 * resource_metadata=…, error_description=…` for a token that lacks `missing`. The body says the same
 * and what to do.
 */
export function insufficientScope(
  ctx: RequestContext,
  server: ServerDefinition,
  config: PkceAuthConfig,
  granted: readonly string[],
  missing: readonly string[],
  options: { resourceMetadata?: string; loginUrl: string },
): Error {
  const scope = stepUpScope(config);
  const description = `the token was not granted ${missing.join(', ')}, which ${server.name} requires: authorize again with the scope given here`;
  const challenge = [`realm="${quoted(server.name)}"`, 'error="insufficient_scope"', `scope="${quoted(scope)}"`];
  if (options.resourceMetadata) challenge.push(`resource_metadata="${options.resourceMetadata}"`);
  challenge.push(`error_description="${quoted(description)}"`);
  ctx.res.setHeader('www-authenticate', `Bearer ${challenge.join(', ')}`);
  return errors.FMCP_ERR_FORBIDDEN(
    `insufficient_scope: the token sent to "${server.name}" was granted ${granted.length > 0 ? `"${granted.join(' ')}"` : 'no scope'}, `
    + `but "${server.name}" requires "${config.requiredScopes.join(' ')}" (missing: ${missing.join(', ')}). `
    + `An MCP client authorizes again by itself with scope="${scope}"; by hand, sign in again at ${options.loginUrl} and send the new access_token`,
  );
}

/** Text inside an RFC 7235 quoted-string, without the characters that would need escaping. */
// eslint-disable-next-line no-control-regex
const quoted = (text: string): string => text.replace(/["\\\u0000-\u001f\u007f]/g, '');
