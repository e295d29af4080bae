import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { definePlugin, errors, type FluidError, type Plugin } from '../core/index.js';

/** `./x.js`, `/abs/x.js`, or `dir/x.mjs` when that file exists; anything else is a module name. */
function pathOf(spec: string, baseDir: string): string | undefined {
  const file = resolve(baseDir, spec);
  if (spec.startsWith('.') || isAbsolute(spec) || spec.includes('\\')) return file;
  return /\.(c|m)?js$/.test(spec) && existsSync(file) ? file : undefined;
}

function loadError(spec: string, why: string): FluidError {
  return errors.FMCP_ERR_PLUGIN_LOAD(spec, why);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The file an `exports` target names, preferring the ESM condition. */
function pickTarget(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) return target.map(pickTarget).find((t) => t !== undefined);
  if (isObject(target)) {
    for (const condition of ['import', 'node', 'default']) {
      const picked = condition in target ? pickTarget(target[condition]) : undefined;
      if (picked) return picked;
    }
  }
  return undefined;
}

/**
 * Finds a package by name from `baseDir` as Node's ESM loader would. import() cannot be told where to
 * resolve from (import.meta.resolve's parent argument is behind a flag on Node 20), and require.resolve
 * refuses ESM-only packages whose `exports` offer only "import".
 */
function resolvePackage(spec: string, baseDir: string): string | undefined {
  const parts = spec.split('/');
  const nameLength = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.slice(nameLength).join('/');
  const searchPaths = createRequire(join(baseDir, 'noop.js')).resolve.paths(name) ?? [];
  const dir = searchPaths.map((p) => join(p, name)).find((d) => existsSync(join(d, 'package.json')));
  if (!dir) return undefined;
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports?: unknown; main?: string };
  const key = subpath ? `./${subpath}` : '.';
  if (pkg.exports !== undefined) {
    const exportsMap = pkg.exports;
    const sugar = !isObject(exportsMap) || Object.keys(exportsMap).every((k) => !k.startsWith('.'));
    const target = pickTarget(sugar ? (key === '.' ? exportsMap : undefined) : exportsMap[key]);
    if (!target) throw loadError(spec, `${join(dir, 'package.json')} exports no "${key}" for import`);
    return join(dir, target);
  }
  return join(dir, subpath || pkg.main || 'index.js');
}

async function importModule(spec: string, baseDir: string): Promise<Record<string, unknown>> {
  const file = pathOf(spec, baseDir);
  if (file !== undefined) {
    if (!existsSync(file)) throw loadError(spec, `no such file ${file}`);
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  // a module name: look for it from baseDir first (the user's project), then beside fluidmcp itself
  const resolved = resolvePackage(spec, baseDir);
  try {
    return (await import(resolved ? pathToFileURL(resolved).href : spec)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!resolved && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')) {
      const asFile = /\.(c|m)?js$/.test(spec) ? `no such file ${resolve(baseDir, spec)}, and ` : '';
      throw loadError(spec, `${asFile}no module of that name is installed (looked from ${baseDir}): install it with npm, or give a path such as ./my-plugin.js`);
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
  // a CommonJS module's whole exports object arrives as the default export
  if (isObject(candidate) && typeof candidate.register !== 'function' && (candidate.default ?? candidate.plugin) !== undefined) {
    candidate = candidate.default ?? candidate.plugin;
  }
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
