import { request } from './undici.js';
import { readBounded } from './token-endpoint.js';

/** The parts of a provider's published metadata (OpenID Connect Discovery 1.0, RFC 8414) used to verify tokens. */
export interface ProviderMetadata {
  /** where the document was read */
  readonly source: string;
  readonly userinfoEndpoint?: string;
  readonly introspectionEndpoint?: string;
  readonly introspectionAuthMethods?: readonly string[];
}

export type Discovery =
  | { readonly found: readonly ProviderMetadata[] }
  /** nothing usable answered: `reachable` is false when no candidate URL answered at all (network error, timeout, 5xx) */
  | { readonly found: readonly []; readonly reachable: boolean; readonly tried: readonly string[] };

const MAX_DOCUMENT_BYTES = 256 * 1024;
/** issuer paths tried below the authorization endpoint's folder (Keycloak's realm is three levels up) */
const MAX_ISSUER_DEPTH = 4;

/**
 * The metadata URLs of the issuers `authorizationUrl` may belong to, most specific issuer first: for each
 * candidate issuer (the endpoint's folders, then the origin), the OpenID Connect location and the two
 * RFC 8414 ones (the well-known path inserted between the host and the issuer's path).
 */
export function metadataUrls(authorizationUrl: string): string[] {
  const { origin, pathname } = new URL(authorizationUrl);
  const segments = pathname.split('/').filter((s) => s !== '');
  const paths: string[] = [];
  for (let i = segments.length - 1; i >= 0 && paths.length < MAX_ISSUER_DEPTH; i--) {
    if (i > 0) paths.push(`/${segments.slice(0, i).join('/')}`);
  }
  paths.push('');
  const urls: string[] = [];
  for (const path of paths) {
    urls.push(`${origin}${path}/.well-known/openid-configuration`);
    if (path !== '') urls.push(`${origin}/.well-known/openid-configuration${path}`);
    urls.push(`${origin}/.well-known/oauth-authorization-server${path}`);
  }
  return urls;
}

/**
 * Reads the provider's metadata for `authorizationUrl`, all candidate URLs at once, each bounded by
 * `timeoutMs`. A document counts only when its `authorization_endpoint` is `authorizationUrl` (query
 * aside): it describes the server users are sent to, not a neighbour on the same host.
 */
export async function discoverProvider(authorizationUrl: string, timeoutMs: number): Promise<Discovery> {
  const urls = metadataUrls(authorizationUrl);
  const answers = await Promise.all(urls.map((url) => fetchDocument(url, timeoutMs)));
  const endpoint = withoutQuery(authorizationUrl);
  const found: ProviderMetadata[] = [];
  answers.forEach((answer, i) => {
    const doc = answer.document;
    if (!doc || typeof doc.authorization_endpoint !== 'string' || withoutQuery(doc.authorization_endpoint) !== endpoint) return;
    found.push({
      source: urls[i]!,
      userinfoEndpoint: httpUrl(doc.userinfo_endpoint),
      introspectionEndpoint: httpUrl(doc.introspection_endpoint),
      introspectionAuthMethods: Array.isArray(doc.introspection_endpoint_auth_methods_supported)
        ? doc.introspection_endpoint_auth_methods_supported.filter((m): m is string => typeof m === 'string')
        : undefined,
    });
  });
  if (found.length > 0) return { found };
  return { found: [], reachable: answers.some((a) => a.answered), tried: urls };
}

interface FetchedDocument {
  /** the server answered with a status below 500 */
  readonly answered: boolean;
  readonly document?: Record<string, unknown>;
}

async function fetchDocument(url: string, timeoutMs: number): Promise<FetchedDocument> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const answer = await request(url, { method: 'GET', headers: { accept: 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal });
    if (answer.statusCode !== 200) {
      await answer.body.dump();
      return { answered: answer.statusCode < 500 };
    }
    const text = await readBounded(answer.body, MAX_DOCUMENT_BYTES);
    return { answered: true, document: jsonObject(text) };
  } catch {
    return { answered: false };
  }
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function withoutQuery(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url;
  }
}

function httpUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const { protocol } = new URL(value);
    return protocol === 'https:' || protocol === 'http:' ? value : undefined;
  } catch {
    return undefined;
  }
}
