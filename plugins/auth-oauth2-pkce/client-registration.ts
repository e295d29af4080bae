import { isLoopback, sendJson, type RequestContext, type ServerDefinition } from '../../core/index.js';
import { ClientMetadataDocuments } from './client-metadata.js';
import { NO_STORE, OAuthError } from './oauth-error.js';
import type { PackageUrls } from './resource-server.js';
import { TokenSeal } from './token-seal.js';

/** A client as the authorization server knows it. */
export interface RegisteredClient {
  readonly clientId: string;
  readonly clientName?: string;
  readonly redirectUris: readonly string[];
}

interface ClientClaims {
  ruris: string[];
  name?: string;
  iat: number;
}

const MAX_REDIRECT_URIS = 10;
const MAX_URI_LENGTH = 2000;
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'vbscript:', 'blob:', 'about:']);
const GRANT_TYPES = ['authorization_code', 'refresh_token'];

/**
 * Dynamic Client Registration (RFC 7591) without storage: the client id is the client's metadata, sealed
 * for this package's issuer. Registered clients are public clients (no secret; PKCE protects the code).
 */
export class ClientRegistration {
  constructor(
    private readonly urls: PackageUrls,
    private readonly seal: TokenSeal,
    /** Client ID Metadata Documents, when they are accepted */
    readonly documents?: ClientMetadataDocuments,
  ) {}

  /**
   * The client behind a client id of this package's issuer, or undefined. A metadata document URL that
   * cannot be used throws an invalid_client OAuthError saying why.
   */
  async find(server: ServerDefinition, clientId: string): Promise<RegisteredClient | undefined> {
    if (ClientMetadataDocuments.isDocumentUrl(clientId)) {
      if (!this.documents) return undefined;
      return this.documents.find(clientId);
    }
    if (!TokenSeal.isSealed(clientId, 'client')) return undefined;
    const opened = await this.seal.open<ClientClaims>('client', clientId, this.urls.issuer(server));
    if (!opened.ok || !Array.isArray(opened.claims.ruris)) return undefined;
    return { clientId, clientName: opened.claims.name, redirectUris: opened.claims.ruris };
  }

  /** POST /{name}/register */
  async register(ctx: RequestContext, server: ServerDefinition): Promise<void> {
    const metadata = readJsonObject(ctx);
    const redirectUris = checkRedirectUris(metadata.redirect_uris);
    const grantTypes = metadata.grant_types ?? ['authorization_code'];
    if (!Array.isArray(grantTypes) || grantTypes.some((g) => !GRANT_TYPES.includes(g as string))) {
      throw new OAuthError('invalid_client_metadata', `grant_types may hold only ${GRANT_TYPES.join(' and ')}`);
    }
    const responseTypes = metadata.response_types ?? ['code'];
    if (!Array.isArray(responseTypes) || responseTypes.some((r) => r !== 'code')) {
      throw new OAuthError('invalid_client_metadata', 'response_types may hold only "code"');
    }
    const name = metadata.client_name;
    if (name !== undefined && (typeof name !== 'string' || name.length > 200)) {
      throw new OAuthError('invalid_client_metadata', 'client_name must be a string of at most 200 characters');
    }
    const issuedAt = Math.floor(Date.now() / 1000);
    const claims: ClientClaims = { ruris: redirectUris, iat: issuedAt, ...(name ? { name } : {}) };
    const clientId = await this.seal.seal('client', { aud: this.urls.issuer(server), ...claims });
    ctx.log.info({ server: server.name, redirectHosts: redirectUris.map(hostOf) }, 'client registered');
    sendJson(ctx.res, 201, {
      client_id: clientId,
      client_id_issued_at: issuedAt,
      ...(name ? { client_name: name } : {}),
      redirect_uris: redirectUris,
      grant_types: GRANT_TYPES,
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }, NO_STORE);
  }
}

/** What the consent page names as where the answer goes. */
export function hostOf(uri: string): string {
  const url = new URL(uri);
  return url.host !== '' ? url.host : `${url.protocol}${url.pathname.split('/')[0] ?? ''}`;
}

function readJsonObject(ctx: RequestContext): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(ctx.body?.toString('utf8') ?? '');
  } catch {
    throw new OAuthError('invalid_client_metadata', 'the body must be a JSON object of client metadata (RFC 7591 section 2)');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OAuthError('invalid_client_metadata', 'the body must be a JSON object of client metadata (RFC 7591 section 2)');
  }
  return value as Record<string, unknown>;
}

/** https anywhere, http on loopback only (RFC 8252 section 7.3), or a private-use scheme of a native app. */
export function checkRedirectUris(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_REDIRECT_URIS) {
    throw new OAuthError('invalid_redirect_uri', `redirect_uris must list 1 to ${MAX_REDIRECT_URIS} URIs`);
  }
  return value.map((uri) => {
    if (typeof uri !== 'string' || uri.length > MAX_URI_LENGTH) throw new OAuthError('invalid_redirect_uri', `each redirect URI must be a string of at most ${MAX_URI_LENGTH} characters`);
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new OAuthError('invalid_redirect_uri', `${JSON.stringify(uri.slice(0, 100))} is not an absolute URI`);
    }
    if (url.hash !== '' || uri.includes('#')) throw new OAuthError('invalid_redirect_uri', 'a redirect URI must not have a fragment');
    if (FORBIDDEN_SCHEMES.has(url.protocol)) throw new OAuthError('invalid_redirect_uri', `the scheme ${url.protocol} is not allowed for a redirect URI`);
    if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
      throw new OAuthError('invalid_redirect_uri', `http redirect URIs must point to loopback (localhost, 127.0.0.1, [::1]); use https for ${url.host}`);
    }
    return uri;
  });
}
