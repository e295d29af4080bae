import type { JsonObject, PendingStateStore } from './contracts.js';

/**
 * In-memory pending state: bounded (oldest dropped first) and expiring. Map keeps insertion order,
 * so the first key is always the oldest.
 */
export class MemoryStateStore implements PendingStateStore {
  private readonly items = new Map<string, { value: JsonObject; expires: number }>();
  constructor(private readonly maxEntries = 10_000) {}

  async put(key: string, value: JsonObject, ttlMs: number): Promise<void> {
    this.sweep();
    this.items.delete(key);
    this.items.set(key, { value, expires: Date.now() + ttlMs });
    while (this.items.size > this.maxEntries) {
      const oldest = this.items.keys().next().value as string;
      this.items.delete(oldest);
    }
  }

  async take(key: string): Promise<JsonObject | undefined> {
    const item = this.items.get(key);
    if (!item) return undefined;
    this.items.delete(key);
    return item.expires > Date.now() ? item.value : undefined;
  }

  async size(): Promise<number> {
    this.sweep();
    return this.items.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, item] of this.items) {
      // entries are mostly in expiry order (same ttl), so stop at the first live one
      if (item.expires > now) break;
      this.items.delete(key);
    }
  }
}
