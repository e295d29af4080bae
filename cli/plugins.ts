import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { definePlugin, errors, type FluidError, type Plugin } from '../core/index.js';

const isPathSpec = (spec: string): boolean =>
  spec.startsWith('.') || isAbsolute(spec) || /\.(c|m)?js$/.test(spec) || spec.includes('\\');

function loadError(spec: string, why: string): FluidError {
  return errors.FMCP_ERR_PLUGIN_LOAD(spec, why);
}

async function importModule(spec: string, baseDir: string): Promise<Record<string, unknown>> {
  if (isPathSpec(spec)) {
    const file = resolve(baseDir, spec);
    if (!existsSync(file)) throw loadError(spec, `no such file ${file}`);
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  // a module name: look for it from baseDir first (the user's project), then beside fluidmcp itself
  let resolved: string | undefined;
  try {
    resolved = createRequire(join(baseDir, 'noop.js')).resolve(spec);
  } catch {
    resolved = undefined; // not found there, or an ESM-only package that require() cannot resolve
  }
  try {
    return (await import(resolved ? pathToFileURL(resolved).href : spec)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!resolved && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')) {
      throw loadError(spec, `no module of that name is installed (looked from ${baseDir}): install it with npm, or give a path such as ./my-plugin.js`);
    }
    throw err;
  }
}

/**
 * Loads a third-party plugin from a module name or a path (relative to `baseDir`). The module's
 * default export, or its named `plugin` export, is a Plugin or a function returning one.
 * Every failure is FMCP_ERR_PLUGIN_LOAD naming the module.
 */
export async function loadPlugin(spec: string, baseDir = process.cwd()): Promise<Plugin> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(spec, baseDir);
  } catch (err) {
    if (errors.FMCP_ERR_PLUGIN_LOAD.is(err)) throw err;
    throw loadError(spec, (err as Error)?.message ?? String(err));
  }
  let candidate = mod.default ?? mod.plugin;
  if (candidate === undefined) {
    throw loadError(spec, 'it has neither a default export nor a named "plugin" export (a plugin, or a function returning one)');
  }
  try {
    if (typeof candidate === 'function') candidate = await (candidate as () => unknown)();
    return definePlugin(candidate as Plugin);
  } catch (err) {
    throw loadError(spec, (err as Error)?.message ?? String(err));
  }
}
