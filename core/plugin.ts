import type { PluginApi } from './kernel.js';
import { errors } from './errors.js';

/** A plugin: a named object with a register step. Dependencies name other plugins. */
export interface Plugin {
  readonly name: string;
  readonly version?: string;
  readonly dependencies?: readonly string[];
  /** soft dependencies: registered first when present, not required */
  readonly after?: readonly string[];
  register(api: PluginApi): void | Promise<void>;
}

const NAME = /^[a-z0-9@][a-z0-9@/._-]*$/i;

/** Checks a plugin's shape and returns it; throws FMCP_ERR_PLUGIN_INVALID naming what is wrong. */
export function definePlugin<P extends Plugin>(plugin: P): P {
  validatePlugin(plugin, 'definePlugin()');
  return plugin;
}

export function validatePlugin(candidate: unknown, where: string): asserts candidate is Plugin {
  if (typeof candidate !== 'object' || candidate === null) throw errors.FMCP_ERR_PLUGIN_INVALID(where, 'expected an object with a name and a register() function');
  const p = candidate as Record<string, unknown>;
  if (typeof p.name !== 'string' || !NAME.test(p.name)) throw errors.FMCP_ERR_PLUGIN_INVALID(where, 'name must be a non-empty string of letters, digits, @ / . _ -');
  const label = `"${p.name}"`;
  if (typeof p.register !== 'function') throw errors.FMCP_ERR_PLUGIN_INVALID(label, 'register must be a function');
  for (const field of ['dependencies', 'after'] as const) {
    const list = p[field];
    if (list !== undefined && (!Array.isArray(list) || list.some((d) => typeof d !== 'string'))) {
      throw errors.FMCP_ERR_PLUGIN_INVALID(label, `${field} must be a list of plugin names`);
    }
  }
  if (p.version !== undefined && typeof p.version !== 'string') throw errors.FMCP_ERR_PLUGIN_INVALID(label, 'version must be a string');
}

/** Orders plugins so each comes after its dependencies; keeps use() order otherwise. */
export function orderPlugins(plugins: readonly Plugin[]): Plugin[] {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  for (const p of plugins) {
    for (const dep of p.dependencies ?? []) {
      if (!byName.has(dep)) throw errors.FMCP_ERR_PLUGIN_DEPENDENCY(p.name, dep);
    }
  }
  const ordered: Plugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (p: Plugin, path: string[]): void => {
    const s = state.get(p.name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(p.name)), p.name];
      throw errors.FMCP_ERR_PLUGIN_CYCLE(cycle.join(' -> '));
    }
    state.set(p.name, 'visiting');
    for (const dep of [...(p.dependencies ?? []), ...(p.after ?? [])]) {
      const d = byName.get(dep);
      if (d) visit(d, [...path, p.name]);
    }
    state.set(p.name, 'done');
    ordered.push(p);
  };
  for (const p of plugins) visit(p, []);
  return ordered;
}
