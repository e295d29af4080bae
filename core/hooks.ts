import type { RequestContext } from './contracts.js';

/** Application hooks, in the order they run. preClose and onClose run last-in, first-out. */
export const applicationHookNames = ['onStart', 'onReady', 'preClose', 'onClose'] as const;
/** Request hooks, in the order they run. */
export const requestHookNames = ['onRequest', 'preHandler', 'onResponse', 'onError'] as const;

export type ApplicationHookName = (typeof applicationHookNames)[number];
export type RequestHookName = (typeof requestHookNames)[number];
export type HookName = ApplicationHookName | RequestHookName;

export type ApplicationHook = () => void | Promise<void>;
export type RequestHook = (ctx: RequestContext) => void | Promise<void>;
export type ErrorHook = (ctx: RequestContext, error: Error) => void | Promise<void>;

export interface HookSignatures {
  onStart: ApplicationHook;
  onReady: ApplicationHook;
  preClose: ApplicationHook;
  onClose: ApplicationHook;
  onRequest: RequestHook;
  preHandler: RequestHook;
  onResponse: RequestHook;
  onError: ErrorHook;
}

export interface RegisteredHook<K extends HookName> {
  readonly fn: HookSignatures[K];
  readonly plugin: string;
}

export type HookTable = { [K in HookName]: RegisteredHook<K>[] };

export function emptyHookTable(): HookTable {
  return { onStart: [], onReady: [], preClose: [], onClose: [], onRequest: [], preHandler: [], onResponse: [], onError: [] };
}

export const isHookName = (name: string): name is HookName =>
  (applicationHookNames as readonly string[]).includes(name) || (requestHookNames as readonly string[]).includes(name);
