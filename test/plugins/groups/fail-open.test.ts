import { expect } from 'chai';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { postJson } from '../../helpers/gateway.js';
import { filesystemEntry, flakyEntry, nextEvent, startGroupGateway, tempFolder, type GroupGateway } from './group-gateway.js';

const names = async (client: Client): Promise<string[]> => (await client.listTools()).tools.map((t) => t.name);

describe('groups: a member that keeps crashing (fail-open, and "required" to fail closed)', () => {
  let gw: GroupGateway;
  let folder: ReturnType<typeof tempFolder>;
  let flag: string;
  before(async () => {
    folder = tempFolder();
    flag = join(folder.dir, 'crash-flag');
    writeFileSync(flag, 'crash');
    gw = await startGroupGateway(
      { fs: filesystemEntry(folder.dir), flaky: flakyEntry(flag) },
      {
        mixed: { servers: ['fs', 'flaky'], memberTimeoutMs: 2000 },
        strict: { servers: ['fs', { server: 'flaky', required: true }], memberTimeoutMs: 2000 },
      },
      // start-up waits this long for a server that never comes up
      { handshakeTimeoutMs: 3000 },
    );
  });
  after(async () => {
    await gw.stop();
    folder.remove();
  });

  it('serves the other member, names the crashing one in errors, and lists its tools again with a list change when it recovers', async () => {
    const client = await gw.connect('/mixed/mcp');
    const fsTools = (await (await gw.connect('/fs/mcp')).listTools()).tools.map((t) => `fs__${t.name}`);
    expect(await names(client)).to.deep.equal(fsTools);
    const read = await client.callTool({ name: 'fs__read_text_file', arguments: { path: join(folder.dir, 'note.txt') } });
    expect(read.content).to.deep.equal([{ type: 'text', text: 'a note for the group\n' }]);

    const err = await client.callTool({ name: 'flaky__hello', arguments: {} }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(McpError);
        // "down" once the proxy saw it crash, "not up yet" before that
    expect((err as McpError).message).to.match(/^MCP error -32000: "tools\/call" goes to member "flaky" of group "mixed", which is (down: it stopped and the gateway is restarting it|not up yet: it has not answered initialize) .*; the other members keep serving$/);

    const closed = await postJson(gw.url('/strict/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect((closed.json as { error: { message: string } }).error.message).to.match(/^Group "strict" is unavailable: its required member "flaky" is (down|not up yet)/);

    const changed = nextEvent(20_000, 'a tools/list_changed notification from the group');
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      if ((await names(client)).includes('flaky__hello')) changed.fire();
    });
    rmSync(flag);
    expect(existsSync(flag)).to.equal(false);
    await changed.wait;
    expect(await names(client)).to.deep.equal([...fsTools, 'flaky__hello']);
    const hello = await client.callTool({ name: 'flaky__hello', arguments: {} });
    expect(hello.content).to.deep.equal([{ type: 'text', text: 'hello from flaky' }]);
    // the other group has its own session with the member: wait until /health shows it up there too
    const deadline = Date.now() + 20_000;
    for (;;) {
      const health = (await (await fetch(gw.url('/health'))).json()) as { servers: Record<string, { group?: { members: Record<string, string> } }> };
      if (health.servers.strict!.group!.members.flaky === 'up') break;
      if (Date.now() > deadline) throw new Error(`group "strict" did not see "flaky" up within 20 s: ${JSON.stringify(health.servers.strict)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const open = await postJson(gw.url('/strict/mcp'), { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flaky__hello', arguments: {} } });
    expect(open.json).to.deep.equal({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'hello from flaky' }] } });
  });

  it('drops a killed member\'s tools with a list change and lists them again when it is restarted', async () => {
    const client = await gw.connect('/mixed/mcp');
    const all = await names(client);
    expect(all).to.include('fs__read_text_file');
    const health = (await (await fetch(gw.url('/health'))).json()) as { servers: Record<string, { pid?: number }> };
    const pid = health.servers.fs!.pid!;
    const events: string[][] = [];
    const back = nextEvent(20_000, 'the killed member\'s tools coming back');
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      const now = await names(client);
      events.push(now);
      if (now.length === all.length && events.some((e) => !e.includes('fs__read_text_file'))) back.fire();
    });
    process.kill(pid, 'SIGKILL');
    await back.wait;
    expect(await names(client)).to.deep.equal(all);
    expect(events.some((e) => e.length === 1 && e[0] === 'flaky__hello')).to.equal(true);
  });
});
