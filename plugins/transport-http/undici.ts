import type * as Undici from 'undici';

let loading: Promise<typeof Undici> | undefined;

/** undici costs ~20 MB of memory once loaded: load it when the first HTTP request is made, not at start. */
export const loadUndici = (): Promise<typeof Undici> => (loading ??= import('undici'));

export const request = (async (...args: Parameters<typeof Undici.request>) => (await loadUndici()).request(...args)) as typeof Undici.request;
