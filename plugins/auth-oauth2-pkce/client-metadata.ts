import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import type * as Undici from 'undici';
import { OAuthError } from './oauth-error.js';
import { loadUndici } from './undici.js';

/** A client described by its Client ID Metadata Document. */
export interface MetadataClient {
  readonly clientId: string;
  readonly clientName?: string;
  readonly redirectUris: readonly string[];
}

export interface ClientMetadataOptions {
  /** bound on one fetch, ms (default 5 s) */
  readonly timeoutMs: number;
  /** largest document, bytes (default 64 KiB) */
  readonly maxBytes: number;
  /** fetches per host per minute (default 30) */
  readonly perHostPerMinute: number;
  /** how long a document is reused when it says nothing (default 5 minutes; at most 1 day whatever it says) */
  readonly defaultCacheMs: number;
  /** host names whose documents may be fetched from private or loopback addresses */
  readonly allowHosts: readonly string[];
  /** true when the gateway itself listens on loopback: loopback documents are allowed then */
  readonly loopbackAllowed: () => boolean;
  /** checks the document's redirect URIs the way registration does */
  readonly checkRedirectUris: (value: unknown) => string[];
}

const MAX_CACHE_ENTRIES = 500;
const MAX_CACHE_MS = 24 * 3600_000;

/** Addresses an attacker-chosen URL must not reach (SSRF): private, loopback, link-local, and the like. */
const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 3]] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [['::', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

function classify(address: string): 'public' | 'private' | 'loopback' {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  let ip = address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) ip = mapped[1]!;
  const fam = mapped ? 'ipv4' : family;
  if (LOOPBACK.check(ip, fam)) return 'loopback';
  if (PRIVATE.check(ip, fam)) return 'private';
  return 'public';
}

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25): the client
 * id is an HTTPS URL whose document names the client and its redirect URIs. The fetch is a request an
 * attacker chooses, so it follows no redirects, connects only to public addresses (checked on the
 * address actually connected to), and is bounded in time, size and rate; documents are cached.
 */
export class ClientMetadataDocuments {
  private readonly cache = new Map<string, { client: MetadataClient; expires: number }>();
  private readonly inFlight = new Map<string, Promise<MetadataClient>>();
  private readonly fetches = new Map<string, number[]>();
  private agent: Undici.Agent | undefined;

  constructor(private readonly options: ClientMetadataOptions) {}

  /** True when a client id is a URL this server treats as a metadata document. */
  static isDocumentUrl(clientId: string): boolean {
    return /^https?:\/\//i.test(clientId);
  }

  async find(clientId: string): Promise<MetadataClient> {
    const cached = this.cache.get(clientId);
    if (cached && cached.expires > Date.now()) return cached.client;
    if (cached) this.cache.delete(clientId);
    let pending = this.inFlight.get(clientId);
    if (!pending) {
      pending = this.fetch(clientId).finally(() => this.inFlight.delete(clientId));
      this.inFlight.set(clientId, pending);
    }
    return pending;
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.agent?.destroy();
    this.agent = undefined;
  }

  private async fetch(clientId: string): Promise<MetadataClient> {
    const url = parseClientIdUrl(clientId);
    this.countFetch(url.hostname);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const refusal = isIP(host) ? this.refusal(url.hostname, host) : undefined;
    if (refusal) throw new OAuthError('invalid_client', refusal);
    const { request } = await loadUndici();
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const answer = await request(url, {
        method: 'GET',
        headers: { accept: 'application/json' },
        dispatcher: await this.dispatcher(),
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
        signal,
      });
      status = answer.statusCode;
      headers = answer.headers;
      if (status !== 200) {
        await answer.body.dump();
        throw new OAuthError('invalid_client', status >= 300 && status < 400
          ? `the client metadata document ${clientId} answered a redirect, which is not followed`
          : `the client metadata document ${clientId} answered HTTP ${status}`);
      }
      text = await readBounded(answer.body, this.options.maxBytes, clientId);
    } catch (err) {
      if (err instanceof OAuthError) throw err;
      const e = err as NodeJS.ErrnoException & { refused?: string };
      if (e.refused) throw new OAuthError('invalid_client', e.refused);
      if (signal.aborted || e.code?.endsWith('TIMEOUT')) throw new OAuthError('invalid_client', `the client metadata document ${clientId} did not arrive within ${this.options.timeoutMs} ms`);
      throw new OAuthError('invalid_client', `the client metadata document ${clientId} cannot be fetched (${e.code ?? e.message})`);
    }
    const client = this.readDocument(clientId, text);
    this.remember(clientId, client, cacheMs(headers['cache-control'], this.options.defaultCacheMs));
    return client;
  }

  private readDocument(clientId: string, text: string): MetadataClient {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new OAuthError('invalid_client', `the client metadata document ${clientId} is not JSON`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new OAuthError('invalid_client', `the client metadata document ${clientId} is not a JSON object`);
    const fields = doc as Record<string, unknown>;
    if (fields.client_id !== clientId) throw new OAuthError('invalid_client', `the client metadata document at ${clientId} names another client_id`);
    if (fields.client_secret !== undefined || (fields.token_endpoint_auth_method ?? 'none') !== 'none') {
      throw new OAuthError('invalid_client', `the client metadata document ${clientId} asks for a client secret; this server takes public clients only ("token_endpoint_auth_method": "none")`);
    }
    let redirectUris: string[];
    try {
      redirectUris = this.options.checkRedirectUris(fields.redirect_uris);
    } catch (err) {
      throw new OAuthError('invalid_client', `the client metadata document ${clientId}: ${(err as OAuthError).description ?? (err as Error).message}`);
    }
    const name = typeof fields.client_name === 'string' ? fields.client_name.slice(0, 200) : undefined;
    return { clientId, redirectUris, ...(name ? { clientName: name } : {}) };
  }

  private remember(clientId: string, client: MetadataClient, ms: number): void {
    if (ms <= 0) return;
    this.cache.delete(clientId);
    this.cache.set(clientId, { client, expires: Date.now() + ms });
    while (this.cache.size > MAX_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
  }

  private countFetch(host: string): void {
    const now = Date.now();
    const recent = (this.fetches.get(host) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= this.options.perHostPerMinute) {
      throw new OAuthError('invalid_client', `too many client metadata fetches from ${host}: try again in a minute`);
    }
    recent.push(now);
    this.fetches.set(host, recent);
    if (this.fetches.size > MAX_CACHE_ENTRIES) this.fetches.delete(this.fetches.keys().next().value as string);
  }

  /** Why `address` may not be reached for `host`, or undefined when it may. */
  private refusal(host: string, address: string): string | undefined {
    const kind = classify(address);
    if (kind === 'public' || this.options.allowHosts.includes(host.toLowerCase())) return undefined;
    if (kind === 'loopback' && this.options.loopbackAllowed()) return undefined;
    return `the client metadata document host ${host} resolves to a ${kind} address (${address}), which this gateway does not fetch from; allow the host with the plugin option clientMetadataDocuments.allowHosts`;
  }

  /** An agent whose DNS lookup refuses private addresses: the check holds for the address connected to. */
  private async dispatcher(): Promise<Undici.Agent> {
    if (this.agent) return this.agent;
    const { Agent } = await loadUndici();
    const lookup = (hostname: string, options: { all?: boolean; family?: number }, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void): void => {
      dnsLookup(hostname, { family: options.family ?? 0, all: true }, (err, addresses) => {
        if (err) return callback(err, '');
        for (const a of addresses) {
          const refused = this.refusal(hostname, a.address);
          if (refused) return callback(Object.assign(new Error('refused'), { refused }), '');
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    };
    this.agent = new Agent({ connect: { lookup: lookup as never, timeout: this.options.timeoutMs }, connections: 4 });
    return this.agent;
  }
}

function parseClientIdUrl(clientId: string): URL {
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    throw new OAuthError('invalid_client', 'the client_id is not a valid URL');
  }
  if (url.protocol !== 'https:') throw new OAuthError('invalid_client', `a client metadata document must be served over HTTPS, and ${clientId} is not`);
  if (url.pathname === '/' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new OAuthError('invalid_client', 'a client_id URL must have a path and no fragment or credentials');
  }
  return url;
}

/** max-age of Cache-Control, bounded; the default without one; 0 for no-store. */
function cacheMs(header: string | string[] | undefined, fallback: number): number {
  const value = Array.isArray(header) ? header.join(',') : header ?? '';
  if (/no-store/i.test(value)) return 0;
  const maxAge = /max-age=(\d+)/i.exec(value);
  return Math.min(maxAge ? Number(maxAge[1]) * 1000 : fallback, MAX_CACHE_MS);
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, limit: number, clientId: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new OAuthError('invalid_client', `the client metadata document ${clientId} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
