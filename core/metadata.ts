import { readFileSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import type { ServerDefinition, ServerEntry } from './contracts.js';
import { errors, type FluidError } from './errors.js';

/** What a metadata.json or config file holds once validated. */
export interface LoadedConfig {
  readonly file: string;
  readonly servers: ServerDefinition[];
  /** plugin modules named in the file, resolved relative to it */
  readonly plugins: string[];
  /** `stateStore`: the URL of a pending-state store shared by replicas (a plugin decides what it serves) */
  readonly stateStore?: string;
  /** `groups`: raw, checked only to be an object; a plugin validates and serves them */
  readonly groups?: Record<string, unknown>;
}

const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A config error that names the file and the field, e.g. `mcpServers.gmail.auth.token_url: expected a URL`. */
export function configError(file: string, field: string, problem: string): FluidError {
  return errors.FMCP_ERR_CONFIG_INVALID(file, field, problem);
}

/** The same, for a field of a server's entry. */
export function serverFieldError(server: ServerDefinition, field: string, problem: string): FluidError {
  return configError(server.source, `mcpServers.${server.name}.${field}`, problem);
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw errors.FMCP_ERR_CONFIG_READ(file, e.code === 'ENOENT' ? 'no such file' : e.message);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw errors.FMCP_ERR_CONFIG_JSON(file, (err as Error).message);
  }
}

export function loadConfigFile(path: string, dir?: string): LoadedConfig {
  const file = resolvePath(path);
  return parseConfig(readConfigFile(file), file, dir ?? dirname(file));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringMap = (v: unknown): v is Record<string, string> => isObject(v) && Object.values(v).every((x) => typeof x === 'string');

export function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Validates the `mcpServers` shape; plugins validate their own parts (auth blocks) later. */
export function parseConfig(json: unknown, file: string, dir: string): LoadedConfig {
  if (!isObject(json)) throw configError(file, '(top level)', 'expected an object with "mcpServers"');
  const servers = json.mcpServers;
  if (!isObject(servers)) throw configError(file, 'mcpServers', 'expected an object mapping server names to {command, args, env} or {url}');
  const defs: ServerDefinition[] = [];
  for (const [name, raw] of Object.entries(servers)) {
    const at = `mcpServers.${name}`;
    if (!SERVER_NAME.test(name)) throw configError(file, at, 'the name must be 1-64 letters, digits, ".", "_" or "-" (it becomes part of the URL)');
    if (!isObject(raw)) throw configError(file, at, 'expected an object');
    const entry = raw as ServerEntry;
    if (entry.command !== undefined && (typeof entry.command !== 'string' || entry.command.trim() === '')) throw configError(file, `${at}.command`, 'expected a non-empty string');
    if (entry.url !== undefined && !isHttpUrl(entry.url)) throw configError(file, `${at}.url`, 'expected an http(s) URL');
    if (entry.command === undefined && entry.url === undefined) throw configError(file, at, 'expected "command" (a local server) or "url" (a remote server)');
    if (entry.command !== undefined && entry.url !== undefined) throw configError(file, at, 'has both "command" and "url": keep one');
    if (entry.args !== undefined && (!Array.isArray(entry.args) || entry.args.some((a) => typeof a !== 'string'))) throw configError(file, `${at}.args`, 'expected a list of strings');
    if (entry.env !== undefined && !isStringMap(entry.env)) throw configError(file, `${at}.env`, 'expected an object of string values');
    if (entry.headers !== undefined && !isStringMap(entry.headers)) throw configError(file, `${at}.headers`, 'expected an object of string values');
    if (entry.cwd !== undefined && typeof entry.cwd !== 'string') throw configError(file, `${at}.cwd`, 'expected a string');
    if (entry.isolation !== undefined && entry.isolation !== 'shared' && entry.isolation !== 'session') throw configError(file, `${at}.isolation`, 'expected "shared" or "session"');
    if (entry.auth !== undefined) {
      if (!isObject(entry.auth)) throw configError(file, `${at}.auth`, 'expected an object with "type"');
      if (typeof entry.auth.type !== 'string' || entry.auth.type === '') throw configError(file, `${at}.auth.type`, 'expected a non-empty string: the auth type, which a plugin handles');
      if (entry.auth.flow !== undefined && typeof entry.auth.flow !== 'string') throw configError(file, `${at}.auth.flow`, 'expected a string: the flow of that auth type');
    }
    const serverDir = entry.cwd ? resolvePath(dir, entry.cwd) : dir;
    defs.push({ name, entry, source: file, dir: serverDir, transport: '' });
  }
  let plugins: string[] = [];
  if (json.plugins !== undefined) {
    if (!Array.isArray(json.plugins) || json.plugins.some((p) => typeof p !== 'string')) throw configError(file, 'plugins', 'expected a list of module names or paths');
    plugins = (json.plugins as string[]).map((p) => (p.startsWith('.') || p.startsWith('/') ? resolvePath(dirname(file), p) : p));
  }
  let stateStore: string | undefined;
  if (json.stateStore !== undefined) {
    if (typeof json.stateStore !== 'string' || !URL.canParse(json.stateStore) || new URL(json.stateStore).hostname === '') {
      throw configError(file, 'stateStore', 'expected the URL of a pending-state store shared by replicas, such as "redis://127.0.0.1:6379/0"');
    }
    stateStore = json.stateStore;
  }
  if (json.groups !== undefined && !isObject(json.groups)) throw configError(file, 'groups', 'expected an object mapping group names to {"servers": [...]}');
  return { file, servers: defs, plugins, stateStore, groups: json.groups as Record<string, unknown> | undefined };
}

/** `${type}/${flow}` or `${type}`: the key an auth strategy is registered under. */
export function authKey(entry: ServerEntry): string | undefined {
  if (!entry.auth) return undefined;
  return entry.auth.flow ? `${entry.auth.type}/${entry.auth.flow}` : entry.auth.type;
}
