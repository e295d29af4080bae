import { dirname } from 'node:path';
import { configError, type AuthConfig, type ServerDefinition, type ServerEntry } from '../../core/index.js';

/** One member of a group, as served: its server, the prefix of its names, and its filter. */
export interface GroupMember {
  readonly server: string;
  readonly prefix: string;
  /** the group fails closed while this member is not up */
  readonly required: boolean;
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

/** A group's entry: `entry.group` of the server definition a group becomes. */
export interface GroupConfig {
  readonly members: readonly GroupMember[];
  /** between a member's prefix and a name (default "__") */
  readonly separator: string;
  /** items per page of a merged list (default 100) */
  readonly pageSize: number;
  /** how long a list waits for one member before leaving it out, ms (default 5000) */
  readonly memberTimeoutMs: number;
  readonly instructions?: string;
}

/** The entry of a server definition that is a group. */
export interface GroupEntry extends ServerEntry {
  readonly group: GroupConfig;
}

export const isGroupEntry = (entry: ServerEntry): entry is GroupEntry => typeof entry.group === 'object' && entry.group !== null;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '');

/** `work=a,b` (the `--group` flag) as the raw config of one group. */
export function parseGroupFlag(value: string): [string, Record<string, unknown>] {
  const eq = value.indexOf('=');
  const name = eq === -1 ? '' : value.slice(0, eq).trim();
  const servers = eq === -1 ? [] : value.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (name === '' || servers.length === 0) throw configError('--group', value, 'expected name=server1,server2 (a group name, "=", and its servers separated by commas)');
  return [name, { servers }];
}

/**
 * Turns raw `groups` maps into server definitions that the groups plugin serves. `servers` are every
 * configured server: members must exist, a group may not take a server's name, and members' auth must mix.
 */
export function groupServers(sources: readonly { file: string; groups: Record<string, unknown> }[], servers: readonly ServerDefinition[]): ServerDefinition[] {
  const byName = new Map(servers.map((s) => [s.name, s]));
  const out: ServerDefinition[] = [];
  for (const { file, groups } of sources) {
    for (const [name, raw] of Object.entries(groups)) {
      const at = `groups.${name}`;
      if (!NAME.test(name)) throw configError(file, at, 'the name must be 1-64 letters, digits, ".", "_" or "-" (it becomes part of the URL)');
      const clash = byName.get(name);
      if (clash) throw configError(file, at, `the group "${name}" has the name of the server "${name}" (${clash.source}): groups and servers share one name space, rename one`);
      const twice = out.find((g) => g.name === name);
      if (twice) throw configError(file, at, `the group "${name}" is also defined in ${twice.source}: group names must be unique`);
      const { config, auth } = parseGroup(file, at, raw, byName);
      const entry: GroupEntry = auth ? { group: config, auth } : { group: config };
      out.push({ name, entry, source: file, dir: file.startsWith('--') ? process.cwd() : dirname(file), transport: '' });
    }
  }
  return out;
}

function parseGroup(file: string, at: string, raw: unknown, servers: ReadonlyMap<string, ServerDefinition>): { config: GroupConfig; auth?: AuthConfig } {
  if (!isObject(raw)) throw configError(file, at, 'expected an object with "servers": ["name", ...]');
  if (!Array.isArray(raw.servers) || raw.servers.length === 0) throw configError(file, `${at}.servers`, 'expected a non-empty list of server names or {"server": "name", "prefix", "required", "tools"} objects');
  const separator = raw.separator ?? '__';
  if (typeof separator !== 'string' || separator === '') throw configError(file, `${at}.separator`, 'expected a non-empty string, such as "__"');
  const pageSize = raw.pageSize ?? 100;
  if (typeof pageSize !== 'number' || !Number.isInteger(pageSize) || pageSize < 1) throw configError(file, `${at}.pageSize`, 'expected a whole number of at least 1');
  const memberTimeoutMs = raw.memberTimeoutMs ?? 5000;
  if (typeof memberTimeoutMs !== 'number' || !(memberTimeoutMs > 0)) throw configError(file, `${at}.memberTimeoutMs`, 'expected a number of milliseconds above 0');
  if (raw.instructions !== undefined && typeof raw.instructions !== 'string') throw configError(file, `${at}.instructions`, 'expected a string');
  const members: GroupMember[] = [];
  raw.servers.forEach((item: unknown, i: number) => {
    const field = `${at}.servers[${i}]`;
    const spec = typeof item === 'string' ? { server: item } : item;
    if (!isObject(spec) || typeof spec.server !== 'string') throw configError(file, field, 'expected a server name or {"server": "name", ...}');
    const server = spec.server;
    if (!servers.has(server)) {
      throw configError(file, field, `unknown server "${server}": a member must be one of the configured servers (${[...servers.keys()].map((s) => `"${s}"`).join(', ') || 'none'})`);
    }
    if (members.some((m) => m.server === server)) throw configError(file, field, `"${server}" is listed twice`);
    const prefix = spec.prefix ?? server;
    if (typeof prefix !== 'string' || prefix === '' || prefix.includes(separator)) throw configError(file, `${field}.prefix`, `expected a non-empty string without the separator "${separator}"`);
    const other = members.find((m) => m.prefix === prefix);
    if (other) throw configError(file, `${field}.prefix`, `"${prefix}" is already the prefix of "${other.server}": each member needs its own prefix`);
    if (spec.required !== undefined && typeof spec.required !== 'boolean') throw configError(file, `${field}.required`, 'expected true or false');
    let allow: string[] | undefined;
    let deny: string[] | undefined;
    if (spec.tools !== undefined) {
      const tools = spec.tools;
      if (!isObject(tools) || (tools.allow === undefined) === (tools.deny === undefined)) throw configError(file, `${field}.tools`, 'expected {"allow": [...]} or {"deny": [...]} (tool names or * globs)');
      const list = tools.allow ?? tools.deny;
      if (!isStringList(list)) throw configError(file, `${field}.tools.${tools.allow !== undefined ? 'allow' : 'deny'}`, 'expected a list of tool names or * globs');
      if (tools.allow !== undefined) allow = list;
      else deny = list;
    }
    members.push({ server, prefix, required: spec.required === true, allow, deny });
  });
  const auth = checkAuthMix(file, at, members.map((m) => servers.get(m.server)!));
  return { config: { members, separator, pageSize, memberTimeoutMs, instructions: raw.instructions as string | undefined }, auth };
}

/** Members without auth and members with one identical auth block may share a group; one login serves them. */
function checkAuthMix(file: string, at: string, members: readonly ServerDefinition[]): AuthConfig | undefined {
  let first: ServerDefinition | undefined;
  for (const member of members) {
    if (!member.entry.auth) continue;
    if (!first) {
      first = member;
      continue;
    }
    if (canonical(member.entry.auth) !== canonical(first.entry.auth)) {
      throw configError(file, at, `members "${first.name}" and "${member.name}" have different auth blocks, so each needs its own login and one token cannot serve both: put them in separate groups, or give them the same auth block`);
    }
  }
  return first?.entry.auth;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  return JSON.stringify(value);
}

/** `*` and `?` globs over a whole name. */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.split('*').map((part) => part.split('?').map(escape).join('.')).join('.*')}$`));
  return (name) => res.some((re) => re.test(name));
}

const escape = (s: string): string => s.replace(/[.+^${}()|[\]\\]/g, '\\$&');
