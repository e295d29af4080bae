import type { ServerResponse } from 'node:http';
import { sendJson } from '../../core/index.js';

/** The error codes of RFC 6749 (sections 4.1.2.1 and 5.2), RFC 7591 and RFC 8707 this gateway answers. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'access_denied'
  | 'server_error'
  | 'temporarily_unavailable'
  | 'invalid_redirect_uri'
  | 'invalid_client_metadata';

/** An OAuth protocol error: answered as `{"error", "error_description"}`, or as a redirect to the client. */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = 400,
  ) {
    super(`${error}: ${description}`);
    this.name = 'OAuthError';
  }
}

export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/** RFC 6749 section 5.2: the JSON error body of the token and registration endpoints. */
export function sendOAuthError(res: ServerResponse, err: OAuthError): void {
  const headers: Record<string, string> = { ...NO_STORE };
  if (err.status === 401) headers['www-authenticate'] = 'Basic realm="token endpoint"';
  sendJson(res, err.status, { error: err.error, error_description: err.description }, headers);
}
