import { Client, StreamableHTTPClientTransport, type ClientOptions } from '@modelcontextprotocol/client';
import { postJson } from './gateway.js';

/** Protocol 2026-07-28 helpers: raw modern requests, and SDK v2 clients. */
export const MODERN = '2026-07-28';

export const envelope = (capabilities: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'raw-modern', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': capabilities,
  ...extra,
});

/** One modern request with the headers a conforming client sends; `headers` overrides or removes (undefined) them. */
export function modernPost(url: string, id: unknown, method: string, params: Record<string, unknown> = {}, headers: Record<string, string | undefined> = {}) {
  const body = { jsonrpc: '2.0', id, method, params: { _meta: envelope(), ...params } };
  const name = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : undefined;
  const all: Record<string, string | undefined> = { 'mcp-protocol-version': MODERN, 'mcp-method': method, ...(name !== undefined ? { 'mcp-name': name } : {}), ...headers };
  const sent: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (v !== undefined) sent[k] = v;
  return postJson(url, body, sent);
}

/** A connected SDK v2 client, pinned to 2026-07-28 or in auto mode. */
export async function connectV2(url: string, mode: 'pin' | 'auto', options: ClientOptions = {}): Promise<Client> {
  const client = new Client({ name: `v2-${mode}`, version: '1.0.0' }, { ...options, versionNegotiation: { mode: mode === 'pin' ? { pin: MODERN } : 'auto' } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}
