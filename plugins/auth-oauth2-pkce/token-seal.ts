import { createHash, randomBytes } from 'node:crypto';
import { compactDecrypt, CompactEncrypt, decodeProtectedHeader } from 'jose';
import { errors } from '../../core/index.js';

/**
 * What the gateway seals: its access and refresh tokens, its authorization codes, its registered clients
 * the authorization request a consent page carries, and what it keeps in a shared pending-state store. `typ` of the JWE header tells them apart, so one
 * can never be replayed as another.
 */
export type SealedKind = 'access' | 'refresh' | 'code' | 'client' | 'consent' | 'pending';

const TYP: Record<SealedKind, string> = {
  access: 'fmcp-at+jwe',
  refresh: 'fmcp-rt+jwe',
  code: 'fmcp-code+jwe',
  client: 'fmcp-client+jwe',
  consent: 'fmcp-consent+jwe',
  pending: 'fmcp-pending+jwe',
};

/** The claims every sealed document has; `exp` in seconds, absent for documents that do not expire. */
export interface SealedClaims {
  /** who it is for: a package's resource URL (tokens) or issuer (clients, codes, consent) */
  aud: string;
  exp?: number;
  [claim: string]: unknown;
}

export type OpenResult<T> = { ok: true; claims: T & SealedClaims } | { ok: false; reason: 'malformed' | 'unknown_key' | 'tampered' | 'wrong_kind' | 'wrong_audience' | 'expired' };

interface TokenKey {
  readonly kid: string;
  readonly secret: Uint8Array;
}

const KEY_TEXT = /^[A-Za-z0-9_-]{43}$|^[0-9a-fA-F]{64}$/;

/**
 * The keys that seal and open the gateway's tokens: JWE compact serialization, `dir` with A256GCM, from
 * jose. The first key seals; every key opens, so a key can be rotated in front of the old one. A key is
 * 32 bytes written as 43 base64url characters or 64 hex digits; its `kid` is derived from it.
 */
export class TokenSeal {
  private readonly keys: TokenKey[];
  /** true when no key was configured and a random one was made (tokens die with the process) */
  readonly ephemeral: boolean;

  constructor(keyTexts: readonly string[]) {
    this.ephemeral = keyTexts.length === 0;
    const texts = this.ephemeral ? [randomBytes(32).toString('base64url')] : keyTexts;
    this.keys = texts.map((text, i) => {
      if (!KEY_TEXT.test(text)) {
        throw errors.FMCP_ERR_CONFIG_INVALID('--token-key / FMCP_TOKEN_KEYS', `key #${i + 1}`,
          `expected 32 bytes as 43 base64url characters or 64 hex digits; make one with: openssl rand -hex 32`);
      }
      const secret = new Uint8Array(text.length === 64 ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64url'));
      return { kid: createHash('sha256').update(secret).digest('base64url').slice(0, 12), secret };
    });
  }

  /** Reads keys from a comma- or space-separated list (FMCP_TOKEN_KEYS). */
  static parseList(value: string | undefined): string[] {
    return (value ?? '').split(/[\s,]+/).filter((k) => k !== '');
  }

  /** True when the token is one of ours of this kind (a JWE with our `typ`), whatever its validity. */
  static isSealed(token: string, kind: SealedKind): boolean {
    if (token.split('.').length !== 5) return false;
    try {
      return decodeProtectedHeader(token).typ === TYP[kind];
    } catch {
      return false;
    }
  }

  async seal(kind: SealedKind, claims: SealedClaims): Promise<string> {
    const key = this.keys[0]!;
    return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: key.kid, typ: TYP[kind] })
      .encrypt(key.secret);
  }

  /** Opens a sealed document of `kind` meant for `audience`; never throws. */
  async open<T extends object = Record<string, unknown>>(kind: SealedKind, token: string, audience: string): Promise<OpenResult<T>> {
    let kid: unknown;
    let typ: unknown;
    try {
      ({ kid, typ } = decodeProtectedHeader(token));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typ !== TYP[kind]) return { ok: false, reason: 'wrong_kind' };
    const key = this.keys.find((k) => k.kid === kid);
    if (!key) return { ok: false, reason: 'unknown_key' };
    let claims: SealedClaims;
    try {
      const { plaintext } = await compactDecrypt(token, key.secret, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
      claims = JSON.parse(new TextDecoder().decode(plaintext)) as SealedClaims;
    } catch {
      return { ok: false, reason: 'tampered' };
    }
    if (typeof claims !== 'object' || claims === null) return { ok: false, reason: 'tampered' };
    if (claims.aud !== audience) return { ok: false, reason: 'wrong_audience' };
    if (claims.exp !== undefined && claims.exp * 1000 <= Date.now()) return { ok: false, reason: 'expired' };
    return { ok: true, claims: claims as T & SealedClaims };
  }
}

/** Seconds since the epoch, `inSeconds` from now. */
export const epochIn = (inSeconds: number): number => Math.floor(Date.now() / 1000) + Math.floor(inSeconds);
