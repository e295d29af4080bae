import type { JsonObject, PendingStateStore } from '../../core/index.js';
import type { TokenSeal } from './token-seal.js';

/**
 * A shared pending-state store (Redis) that only ever sees sealed values: each value (a pending login
 * with its PKCE verifier, a consent or code marker) is encrypted with the gateway's token key (JWE `dir`
 * + A256GCM, as the tokens) for its own key, and opened when taken. Every replica has the same token
 * key, so a login started on one finishes on another; the store, and its snapshots on disk, hold no
 * verifier in clear.
 */
export class SealedStateStore implements PendingStateStore {
  constructor(
    private readonly inner: PendingStateStore,
    private readonly seal: TokenSeal,
  ) {}

  async put(key: string, value: JsonObject, ttlMs: number): Promise<void> {
    // `aud` binds the value to its key: a value moved to another key in the store does not open
    const sealed = await this.seal.seal('pending', { aud: `pending:${key}`, value });
    await this.inner.put(key, { sealed }, ttlMs);
  }

  /** The value, or undefined when there is none or it does not open (another key, tampered, unsealed). */
  async take(key: string): Promise<JsonObject | undefined> {
    const stored = await this.inner.take(key);
    if (stored === undefined || typeof stored.sealed !== 'string') return undefined;
    const opened = await this.seal.open<{ value: JsonObject }>('pending', stored.sealed, `pending:${key}`);
    return opened.ok ? opened.claims.value : undefined;
  }

  size(): Promise<number> {
    return this.inner.size();
  }
}
