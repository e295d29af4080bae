import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import semver from 'semver';
import { errors, type FluidError } from '../core/index.js';
import { UsageError } from './output.js';

/** One installed version of a package: `<root>/<author>/<name>/<version>/metadata.json`. */
export interface InstalledPackage {
  readonly author: string;
  readonly name: string;
  readonly version: string;
  /** `author/name@version` */
  readonly id: string;
  readonly metadata: string;
}

/** A file to read servers from, and how the start-up line names it. */
export interface ConfigSource {
  readonly file: string;
  /** what `Reading <label>...` prints */
  readonly label: string;
  readonly pkg?: InstalledPackage;
  /** every installed version of `pkg`, lowest first: when there are several, `run` says which it picked */
  readonly versions?: readonly string[];
}

/** The installed versions of `pkg`'s author/name, in `listInstalled` order (lowest first). */
function versionsOf(pkg: InstalledPackage, installed: readonly InstalledPackage[]): string[] {
  return installed.filter((p) => p.author === pkg.author && p.name === pkg.name).map((p) => p.version);
}

const PACKAGE_SPEC = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([^/\s]+))?$/;
const METADATA = 'metadata.json';

/** `--packages-dir`, else $FMCP_PACKAGES_DIR, else ./.fmcp-packages. */
export function packagesDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit || env.FMCP_PACKAGES_DIR || '.fmcp-packages');
}

function subdirs(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => !n.startsWith('.') && isDir(join(dir, n)));
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Versions by semver (valid ones above invalid ones, which fall back to natural string order). */
export function compareVersions(a: string, b: string): number {
  const va = semver.valid(a);
  const vb = semver.valid(b);
  if (va && vb) return semver.compare(va, vb);
  if (va) return 1;
  if (vb) return -1;
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The highest version by semver, not by string order (1.10.0 beats 1.9.0). */
export function highestVersion(versions: readonly string[]): string | undefined {
  return [...versions].sort(compareVersions).at(-1);
}

/** Every installed version that has a metadata.json, sorted by author, name, then version. */
export function listInstalled(root: string): InstalledPackage[] {
  const found: InstalledPackage[] = [];
  for (const author of subdirs(root)) {
    for (const name of subdirs(join(root, author))) {
      for (const version of subdirs(join(root, author, name))) {
        const metadata = join(root, author, name, version, METADATA);
        if (isFile(metadata)) found.push({ author, name, version, id: `${author}/${name}@${version}`, metadata });
      }
    }
  }
  return found.sort((a, b) => a.author.localeCompare(b.author) || a.name.localeCompare(b.name) || compareVersions(a.version, b.version));
}

/** The highest version of each installed package. */
export function latestOfEach(installed: readonly InstalledPackage[]): InstalledPackage[] {
  const byPackage = new Map<string, InstalledPackage>();
  for (const pkg of installed) {
    const key = `${pkg.author}/${pkg.name}`;
    const current = byPackage.get(key);
    if (!current || compareVersions(pkg.version, current.version) > 0) byPackage.set(key, pkg);
  }
  return [...byPackage.values()];
}

function summarize(ids: readonly string[], max = 10): string {
  if (ids.length <= max) return ids.join(', ');
  return `${ids.slice(0, max).join(', ')} and ${ids.length - max} more`;
}

function notFound(spec: string, root: string, installed: readonly InstalledPackage[], author?: string, name?: string): FluidError {
  const err = errors.FMCP_ERR_PACKAGE_NOT_FOUND(spec, root);
  const same = installed.filter((p) => p.author === author && p.name === name);
  if (same.length > 0) err.message += `. Installed versions of ${author}/${name}: ${summarize(same.map((p) => p.version))}`;
  else if (installed.length > 0) err.message += `. Installed: ${summarize(installed.map((p) => p.id))}`;
  else err.message += '. No packages are installed there yet';
  return err;
}

/** Finds `author/name`, `author/name@version` (or a semver range) among the installed packages. */
export function findPackage(spec: string, root: string, installed = listInstalled(root)): InstalledPackage {
  const m = PACKAGE_SPEC.exec(spec);
  if (!m) throw errors.FMCP_ERR_PACKAGE_SPEC(spec);
  const [, author, name, wanted] = m;
  const versions = installed.filter((p) => p.author === author && p.name === name);
  let pick: InstalledPackage | undefined;
  if (wanted === undefined || wanted === 'latest') {
    const top = highestVersion(versions.map((p) => p.version));
    pick = versions.find((p) => p.version === top);
  } else {
    pick = versions.find((p) => p.version === wanted);
    if (!pick && !semver.valid(wanted) && semver.validRange(wanted)) {
      const top = semver.maxSatisfying(versions.map((p) => p.version).filter((v) => semver.valid(v)), wanted);
      pick = versions.find((p) => p.version === top);
    }
  }
  if (!pick) throw notFound(spec, root, installed, author, name);
  return pick;
}

function looksLikePath(spec: string): boolean {
  return spec.endsWith('.json') || spec.startsWith('.') || spec.startsWith('/') || spec.includes('\\') || spec.split('/').length > 2;
}

/** A path given on the command line: a config file, or a folder holding a metadata.json. */
export function fileSource(spec: string, cwd = process.cwd()): ConfigSource {
  let file = resolve(cwd, spec);
  if (isDir(file)) file = join(file, METADATA);
  return { file, label: basename(file) === METADATA ? METADATA : spec };
}

/**
 * What `fluidmcp run <spec>` reads: an installed package, `all` of them (the highest version of each),
 * or a path to a metadata.json (or a folder holding one).
 */
export function resolveRunTarget(spec: string, root: string, cwd = process.cwd()): ConfigSource[] {
  if (spec === 'all') {
    const installed = listInstalled(root);
    if (installed.length === 0) {
      throw new UsageError(`no packages are installed in ${root}: lay them out as author/package/version/metadata.json there, or set FMCP_PACKAGES_DIR`);
    }
    return latestOfEach(installed).map((pkg) => ({ file: pkg.metadata, label: METADATA, pkg, versions: versionsOf(pkg, installed) }));
  }
  if (looksLikePath(spec)) return [fileSource(spec, cwd)];
  if (PACKAGE_SPEC.test(spec)) {
    const installed = listInstalled(root);
    try {
      const pkg = findPackage(spec, root, installed);
      return [{ file: pkg.metadata, label: METADATA, pkg, versions: versionsOf(pkg, installed) }];
    } catch (err) {
      // a folder such as examples/demo reads like author/package: accept it when it holds a metadata.json
      if (existsSync(join(resolve(cwd, spec), METADATA))) return [fileSource(spec, cwd)];
      throw err;
    }
  }
  if (existsSync(resolve(cwd, spec))) return [fileSource(spec, cwd)];
  throw errors.FMCP_ERR_PACKAGE_SPEC(spec);
}
