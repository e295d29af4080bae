import type { JsonObject } from '../../core/index.js';
import type { MemberLink } from './member-link.js';

/** The four lists a group merges, with the field that names an item and whether that name is prefixed. */
export const LISTS = {
  'tools/list': { field: 'tools', key: 'name', prefixed: true },
  'prompts/list': { field: 'prompts', key: 'name', prefixed: true },
  'resources/list': { field: 'resources', key: 'uri', prefixed: false },
  'resources/templates/list': { field: 'resourceTemplates', key: 'uriTemplate', prefixed: false },
} as const;

export type ListMethod = keyof typeof LISTS;
export const isListMethod = (method: string): method is ListMethod => method in LISTS;

/** One merged list, frozen while clients page through it. */
export interface Snapshot {
  readonly id: number;
  readonly items: readonly JsonObject[];
}

/** Cursors name the snapshot and the offset: a cursor of a replaced snapshot restarts at its offset in the new one. */
export function encodeCursor(snapshot: number, offset: number): string {
  return Buffer.from(JSON.stringify({ s: snapshot, o: offset })).toString('base64url');
}

export function decodeCursor(cursor: unknown): { s: number; o: number } | undefined {
  if (typeof cursor !== 'string') return undefined;
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { s?: unknown; o?: unknown };
    if (typeof value.s === 'number' && typeof value.o === 'number' && Number.isInteger(value.o) && value.o >= 0) return { s: value.s, o: value.o };
  } catch {
    // not one of ours
  }
  return undefined;
}

/** A member's items as the group lists them: filtered, and names prefixed. */
export function memberItems(method: ListMethod, link: MemberLink, items: readonly JsonObject[], separator: string): JsonObject[] {
  const list = LISTS[method];
  const out: JsonObject[] = [];
  for (const item of items) {
    const name = item[list.key];
    if (typeof name !== 'string') continue;
    if (method === 'tools/list' && !link.toolAllowed(name)) continue;
    out.push(list.prefixed ? { ...item, [list.key]: `${link.member.prefix}${separator}${name}` } : item);
  }
  return out;
}

/** An RFC 6570 template as a pattern over URIs it can expand to (any expression matches any text). */
export function templatePattern(template: string): RegExp {
  const parts = template.split(/\{[^}]*\}/).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`);
}
