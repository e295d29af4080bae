import { sendJson, type RequestContext, type ServerDefinition } from '../../core/index.js';
import type { PkceAuthConfig } from './config.js';
import { scopesOf } from './step-up.js';
import { TokenSeal } from './token-seal.js';

/** The URLs of a package as a protected resource (RFC 9728) and as its own authorization server (RFC 8414). */
export class PackageUrls {
  constructor(private readonly publicUrl: () => string) {}

  private base(server: ServerDefinition): string {
    return `${this.publicUrl()}/${encodeURIComponent(server.name)}`;
  }

  /** the issuer of the package's authorization server */
  issuer(server: ServerDefinition): string {
    return this.base(server);
  }

  /** the resource: what the gateway's access tokens for this package are for (RFC 8707 `resource`) */
  resource(server: ServerDefinition): string {
    return `${this.base(server)}/mcp`;
  }

  resourceMetadata(server: ServerDefinition): string {
    return `${this.publicUrl()}/.well-known/oauth-protected-resource/${encodeURIComponent(server.name)}/mcp`;
  }

  authorizationEndpoint(server: ServerDefinition): string {
    return `${this.base(server)}/authorize`;
  }

  tokenEndpoint(server: ServerDefinition): string {
    return `${this.base(server)}/token`;
  }

  registrationEndpoint(server: ServerDefinition): string {
    return `${this.base(server)}/register`;
  }
}

/** What a sealed access token of ours holds. */
export interface AccessClaims {
  [claim: string]: unknown;
  /** the provider's access token */
  ptk: string;
  /** the client it was issued to */
  cid: string;
  scope?: string;
}

/** The outcome of presenting a Bearer token: not ours (undefined), ours and valid, or ours and refused. */
export type SealedAccessResult = undefined | { ok: true; providerToken: string; clientId: string; scopes: string[] } | { ok: false; why: string };

/** The strategy's view of the gateway's own tokens: the extra challenge parameters, and one check. */
export interface SealedAccess {
  /** RFC 9728 section 5.1 parameters for every Bearer challenge of this server */
  challenge(server: ServerDefinition): string[];
  /** the Protected Resource Metadata URL of the server (RFC 9728) */
  resourceMetadata(server: ServerDefinition): string;
  open(token: string, server: ServerDefinition): Promise<SealedAccessResult>;
}

const WHY: Record<string, string> = {
  malformed: 'is not a valid token',
  unknown_key: 'was sealed with a key this gateway no longer has (it restarted without --token-key, or the key was retired)',
  tampered: 'was altered or is not valid',
  wrong_kind: 'is not an access token',
  wrong_audience: 'was issued for another package',
  expired: 'has expired',
};

/**
 * The resource-server side of the MCP authorization spec for oauth2/pkce packages: Protected Resource
 * Metadata, the `resource_metadata` challenge, and the check of the gateway's sealed access tokens.
 */
export class ResourceServer implements SealedAccess {
  constructor(
    private readonly urls: PackageUrls,
    private readonly seal: TokenSeal,
    private readonly configOf: (server: ServerDefinition) => PkceAuthConfig,
  ) {}

  challenge(server: ServerDefinition): string[] {
    const params = [`resource_metadata="${this.urls.resourceMetadata(server)}"`];
    const scopes = this.configOf(server).scopes;
    if (scopes.length > 0) params.push(`scope="${scopes.join(' ')}"`);
    return params;
  }

  async open(token: string, server: ServerDefinition): Promise<SealedAccessResult> {
    if (!TokenSeal.isSealed(token, 'access')) {
      // one of ours of another kind: say what it is rather than let the provider reject it
      const misused = this.misused(token, server);
      return misused === undefined ? undefined : { ok: false, why: misused };
    }
    const opened = await this.seal.open<AccessClaims>('access', token, this.urls.resource(server));
    if (!opened.ok) return { ok: false, why: `The access token sent to "${server.name}" ${WHY[opened.reason]}` };
    const { ptk, cid, scope } = opened.claims;
    if (typeof ptk !== 'string' || ptk === '' || typeof cid !== 'string') return { ok: false, why: `The access token sent to "${server.name}" ${WHY.tampered}` };
    // the scopes granted when it was issued (none recorded: none granted)
    return { ok: true, providerToken: ptk, clientId: cid, scopes: scopesOf(scope) };
  }

  /** What a sealed document of this gateway sent as a Bearer token is, and what to do instead; undefined for other tokens. */
  private misused(token: string, server: ServerDefinition): string | undefined {
    const sent = `The Bearer token sent to "${server.name}"`;
    if (TokenSeal.isSealed(token, 'refresh')) {
      return `${sent} is a refresh token, not an access token (exchange it at the token endpoint ${this.urls.tokenEndpoint(server)} with grant_type=refresh_token)`;
    }
    if (TokenSeal.isSealed(token, 'client')) {
      return `${sent} is a client id (from ${this.urls.registrationEndpoint(server)}), not an access token (sign in with it at ${this.urls.authorizationEndpoint(server)})`;
    }
    if (TokenSeal.isSealed(token, 'code')) {
      return `${sent} is an authorization code, not an access token (redeem it at the token endpoint ${this.urls.tokenEndpoint(server)} with grant_type=authorization_code)`;
    }
    return undefined;
  }

  resourceMetadata(server: ServerDefinition): string {
    return this.urls.resourceMetadata(server);
  }

  /** GET /.well-known/oauth-protected-resource/{name}/mcp (RFC 9728 section 3). */
  metadata(ctx: RequestContext, server: ServerDefinition): void {
    const scopes = this.configOf(server).scopes;
    sendJson(ctx.res, 200, {
      resource: this.urls.resource(server),
      authorization_servers: [this.urls.issuer(server)],
      ...(scopes.length > 0 ? { scopes_supported: scopes } : {}),
      bearer_methods_supported: ['header'],
      resource_name: server.name,
    }, { 'cache-control': 'public, max-age=300' });
  }
}
