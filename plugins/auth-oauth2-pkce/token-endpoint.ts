import { request } from './undici.js';
import { errors, serverFieldError, type FluidError, type JsonObject, type ServerDefinition } from '../../core/index.js';
import type { PkceAuthConfig, TokenEndpointAuthMethod } from './config.js';

/** The client as the provider knows it, read from the environment at the time of use. */
export interface ClientCredentials {
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly method: TokenEndpointAuthMethod;
}

export interface TokenRequest {
  readonly server: ServerDefinition;
  readonly config: PkceAuthConfig;
  readonly client: ClientCredentials;
  /** grant parameters: grant_type and what it needs */
  readonly grant: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** what the user should do when the provider refuses, e.g. "Start a new login at <url>" */
  readonly retryHint: string;
}

const MAX_ANSWER_BYTES = 256 * 1024;

/** Reads client_id (and the secret when there is one) from the variables the auth block names. */
export function readClientCredentials(server: ServerDefinition, config: PkceAuthConfig, env: NodeJS.ProcessEnv = process.env): ClientCredentials {
  const clientId = env[config.clientIdEnv];
  if (!clientId) {
    throw serverFieldError(server, 'auth.client_id_env',
      `client_id not found: the environment variable ${config.clientIdEnv} is not set. Run export ${config.clientIdEnv}="<your client id>" and restart FluidMCP`);
  }
  const clientSecret = config.clientSecretEnv ? env[config.clientSecretEnv] || undefined : undefined;
  const method = config.tokenEndpointAuthMethod ?? (clientSecret ? 'client_secret_post' : 'none');
  if (method !== 'none' && !clientSecret) {
    throw serverFieldError(server, 'auth.client_secret_env',
      `client_secret not found: the environment variable ${config.clientSecretEnv} is not set. Run export ${config.clientSecretEnv}="<your client secret>" and restart FluidMCP`);
  }
  return { clientId, clientSecret: method === 'none' ? undefined : clientSecret, method };
}

/** RFC 6749 section 2.3.1: id and secret are form-encoded before they are joined for Basic. */
const formEncode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2);

/** Provider text shown to users: printable, bounded. */
export function providerText(value: unknown, max = 300): string {
  const text = typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value);
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/**
 * POSTs a form-encoded token request (RFC 6749 section 4.1.3 / 6) and returns the provider's answer.
 * Every failure is a FluidError that says what the provider said and what to do.
 */
export async function requestToken(req: TokenRequest): Promise<JsonObject> {
  const { server, config, client, timeoutMs } = req;
  const form = new URLSearchParams(req.grant);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  form.set('client_id', client.clientId);
  if (client.method === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret!)}`).toString('base64')}`;
  } else if (client.method === 'client_secret_post') {
    form.set('client_secret', client.clientSecret!);
  }

  const where = `the token endpoint ${config.tokenUrl} of "${server.name}"`;
  let status: number;
  let contentType: string;
  let text: string;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const answer = await request(config.tokenUrl, {
      method: 'POST',
      headers,
      body: form.toString(),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal,
    });
    status = answer.statusCode;
    contentType = String(answer.headers['content-type'] ?? '');
    text = await readBounded(answer.body, MAX_ANSWER_BYTES);
  } catch (err) {
    throw transportError(err, server.name, where, timeoutMs, signal.aborted);
  }

  const body = parseAnswer(text, contentType);
  if (status >= 200 && status < 300) {
    if (body && typeof body.access_token === 'string' && body.access_token !== '') return body;
    throw errors.FMCP_ERR_UPSTREAM(server.name, `${where} answered ${status} without an access_token. Check auth.token_url`);
  }
  const code = body && typeof body.error === 'string' ? providerText(body.error, 80) : undefined;
  if (!code) {
    throw errors.FMCP_ERR_UPSTREAM(server.name, `${where} answered HTTP ${status} without an OAuth error. Check auth.token_url and the provider's status, then try again`);
  }
  const said = `${code}${body?.error_description ? `: ${providerText(body.error_description)}` : ''}`;
  if (code === 'invalid_client' || code === 'unauthorized_client') {
    throw errors.FMCP_ERR_UPSTREAM(server.name,
      `${where} refused the client (${said}). Check ${config.clientIdEnv}${config.clientSecretEnv ? ` and ${config.clientSecretEnv}` : ''} and auth.token_endpoint_auth_method`);
  }
  if (status >= 500) throw errors.FMCP_ERR_UPSTREAM(server.name, `${where} failed (HTTP ${status}, ${said}). Try again later`);
  throw errors.FMCP_ERR_BAD_REQUEST(`The provider refused the token request for "${server.name}" (${said}). ${req.retryHint}`);
}

function transportError(err: unknown, serverName: string, where: string, timeoutMs: number, aborted: boolean): FluidError {
  const e = err as NodeJS.ErrnoException;
  if (aborted || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return errors.FMCP_ERR_TIMEOUT(`The request to ${where}`, timeoutMs);
  }
  const why = e.code === 'ECONNREFUSED' ? 'connection refused' : e.code === 'ENOTFOUND' ? 'host not found' : (e.code ?? e.message);
  return errors.FMCP_ERR_UPSTREAM(serverName, `cannot reach ${where} (${why}). Check auth.token_url and that the provider is up, then try again`);
}

export async function readBounded(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw Object.assign(new Error(`the answer is larger than ${limit} bytes`), { code: 'answer too large' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** JSON (most providers) or form-encoded (some, such as GitHub without Accept) answers. */
function parseAnswer(text: string, contentType: string): JsonObject | undefined {
  if (contentType.includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}
