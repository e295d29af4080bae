import { expect } from 'chai';
import { postJson } from '../../helpers/gateway.js';

export interface GetEnvAnswer {
  status: number;
  /** the gateway's JSON error, when it refused the call */
  error?: { code: string; message: string };
  headers: Headers;
  /** the server process's environment, when the call went through */
  env?: Record<string, string>;
}

/**
 * Calls server-everything's get-env tool with a bare JSON-RPC POST to `{base}/{name}/mcp`: what the server
 * process that served this caller has in its environment.
 */
export async function getEnv(base: string, name: string, headers: Record<string, string> = {}): Promise<GetEnvAnswer> {
  const res = await postJson(`${base}/${name}/mcp`, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'get-env', arguments: {} } }, headers);
  const body = res.json as { error?: { code: string; message: string }; result?: { content: { text: string }[] } } | undefined;
  if (res.status !== 200) return { status: res.status, error: body?.error, headers: res.headers };
  expect(body?.result, res.text).to.not.equal(undefined);
  return { status: res.status, headers: res.headers, env: JSON.parse(body!.result!.content[0]!.text) as Record<string, string> };
}
