import type { StrategyRegistry } from './contracts.js';
import { errors } from './errors.js';

/** An explicit map of strategies: a duplicate key is an error naming both plugins, never "last wins". */
export class KeyedRegistry<T> implements StrategyRegistry<T> {
  private readonly entries = new Map<string, { value: T; plugin: string }>();
  constructor(private readonly what: string) {}

  register(key: string, value: T, plugin = 'app'): void {
    const existing = this.entries.get(key);
    if (existing) throw errors.FMCP_ERR_STRATEGY_DUPLICATE(this.what, key, existing.plugin, plugin);
    this.entries.set(key, { value, plugin });
  }
  get(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }
  keys(): string[] {
    return [...this.entries.keys()];
  }
  values(): T[] {
    return [...this.entries.values()].map((e) => e.value);
  }
  owner(key: string): string | undefined {
    return this.entries.get(key)?.plugin;
  }
}
