import type { ServerCatalog, ServerDefinition } from './contracts.js';
import { errors } from './errors.js';

/** The servers a kernel serves, by name; a second server under a name is a config error naming both sources. */
export class Catalog implements ServerCatalog {
  private readonly byName = new Map<string, ServerDefinition>();
  add(def: ServerDefinition): void {
    if (this.byName.has(def.name)) {
      const first = this.byName.get(def.name)!;
      throw errors.FMCP_ERR_CONFIG_INVALID(def.source, `mcpServers.${def.name}`, `the name is already used by ${first.source}: server names must be unique`);
    }
    this.byName.set(def.name, def);
  }
  list(): readonly ServerDefinition[] {
    return [...this.byName.values()];
  }
  get(name: string): ServerDefinition | undefined {
    return this.byName.get(name);
  }
}

