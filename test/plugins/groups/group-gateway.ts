import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createKernel, groups, groupServers, parseConfig, proxyJsonRpc, transportSse, transportStdio, type Kernel, type Plugin, type ServerEntry } from '../../../index.js';
import { everythingEntry } from '../../helpers/gateway.js';
import { fixture, repoRoot } from '../../helpers/paths.js';

export const filesystemServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

/** A temporary folder with one file, served by server-filesystem. */
export function tempFolder(): { dir: string; file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'fmcp-groups-'));
  const file = join(dir, 'note.txt');
  writeFileSync(file, 'a note for the group\n');
  return { dir, file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const filesystemEntry = (dir: string): ServerEntry => ({ command: process.execPath, args: [filesystemServer, dir] });
export const flakyEntry = (flag: string): ServerEntry => ({ command: process.execPath, args: [fixture('group-flaky.mjs')], env: { FLAKY_FLAG: flag } });
export { everythingEntry };

export interface GroupGateway {
  readonly kernel: Kernel;
  url(path: string): string;
  connect(path: string, capabilities?: Record<string, unknown>): Promise<Client>;
  stop(): Promise<void>;
}

/** A real gateway on port 0 with the groups plugin, serving `servers` and `groups` as a config file would. */
export async function startGroupGateway(servers: Record<string, ServerEntry>, groupMap: Record<string, unknown>, proxy: Parameters<typeof proxyJsonRpc>[0] = {}, extra: Plugin[] = []): Promise<GroupGateway> {
  const file = `${repoRoot}/test-groups.json`;
  const config = parseConfig({ mcpServers: servers, groups: groupMap }, file, repoRoot);
  const defs = [...config.servers, ...groupServers([{ file, groups: config.groups ?? {} }], config.servers)];
  const kernel = createKernel({ port: 0, host: '127.0.0.1', logger: pino({ level: process.env.FMCP_TEST_LOG ?? 'silent' }), servers: defs });
  // quick restarts so a crashing member comes back soon after it is fixed
  kernel.use(transportStdio({ restartBaseMs: 200, restartMaxMs: 200, maxFailedStarts: 1000 }));
  kernel.use(proxyJsonRpc(proxy));
  kernel.use(transportSse());
  kernel.use(groups());
  for (const plugin of extra) kernel.use(plugin);
  await kernel.start();
  const base = `http://127.0.0.1:${kernel.address().port}`;
  const clients: Client[] = [];
  return {
    kernel,
    url: (path) => base + path,
    async connect(path, capabilities = {}) {
      const client = new Client({ name: 'group-test', version: '1.0.0' }, { capabilities });
      await client.connect(new StreamableHTTPClientTransport(new URL(base + path)));
      clients.push(client);
      return client;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await kernel.stop();
    },
  };
}

/** Every page of a list, following nextCursor; also returns the size of each page. */
export async function allPages<T>(read: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>): Promise<{ items: T[]; pages: number[] }> {
  const items: T[] = [];
  const pages: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await read(cursor);
    items.push(...page.items);
    pages.push(page.items.length);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { items, pages };
}

/** Resolves at the next call of the returned trigger, or rejects after `ms`. */
export function nextEvent(ms: number, what: string): { wait: Promise<void>; fire: () => void } {
  let fire: () => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const wait = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    fire = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { wait, fire: () => fire() };
}
