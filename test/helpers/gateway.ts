import { pino } from 'pino';
import {
  createKernel,
  parseConfig,
  proxyJsonRpc,
  transportSse,
  transportHttp,
  transportStdio,
  type Kernel,
  type KernelOptions,
  type Plugin,
  type ServerEntry,
} from '../../index.js';
import { everythingServer, repoRoot } from './paths.js';

export interface TestGateway {
  readonly kernel: Kernel;
  /** http://127.0.0.1:<port> */
  readonly base: string;
  url(path: string): string;
  stop(): Promise<void>;
}

export interface TestGatewayOptions {
  /** plugins instead of stdio + proxy + sse */
  plugins?: Plugin[];
  kernel?: KernelOptions;
  proxy?: Parameters<typeof proxyJsonRpc>[0];
  /**
   * wait (up to 30 s) until each shared server has left `starting` (ready, down or failed), as
   * start() itself did before it stopped waiting for servers; default true
   */
  waitForServers?: boolean;
}

/** Starts a real gateway on port 0 serving `servers`, with the default plugins unless told otherwise. */
export async function startGateway(servers: Record<string, ServerEntry>, options: TestGatewayOptions = {}): Promise<TestGateway> {
  const config = parseConfig({ mcpServers: servers }, `${repoRoot}/test-config.json`, repoRoot);
  const kernel = createKernel({ port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }), ...options.kernel, servers: config.servers });
  for (const plugin of options.plugins ?? [transportStdio(), transportHttp(), proxyJsonRpc(options.proxy), transportSse()]) kernel.use(plugin);
  await kernel.start();
  const base = `http://127.0.0.1:${kernel.address().port}`;
  if (options.waitForServers !== false) await serversSettled(base);
  return { kernel, base, url: (path) => base + path, stop: () => kernel.stop() };
}

export const everythingEntry = (): ServerEntry => ({ command: process.execPath, args: [everythingServer, 'stdio'] });

/** POSTs one JSON-RPC body (object or raw string) to `url`. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: unknown; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Polls /health until no server says `starting` without a lastError, for at most `ms`. */
async function serversSettled(base: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const health = (await (await fetch(`${base}/health`)).json()) as { servers: Record<string, { state?: string; lastError?: string }> };
    // settled: up, failed, or starting again after a failure (then it has a lastError)
    if (!Object.values(health.servers).some((s) => s.state === 'starting' && s.lastError === undefined) || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
