import { createHash, randomBytes } from 'node:crypto';

/** RFC 7636 section 4.1: 43 to 128 characters of the unreserved set. */
export const VERIFIER_PATTERN = /^[A-Za-z0-9\-._~]{43,128}$/;

/** A new code verifier: 32 random bytes, base64url, 43 characters. */
export function createVerifier(): string {
  return randomBytes(32).toString('base64url');
}

/** The S256 code challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))). */
export function challengeS256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** A new `state`: 256 random bits, base64url. */
export function createState(): string {
  return randomBytes(32).toString('base64url');
}

/** A stable, non-secret key for a token: its SHA-256, hex. */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
