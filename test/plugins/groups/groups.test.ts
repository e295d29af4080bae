import { expect } from 'chai';
import { McpError, CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { postJson } from '../../helpers/gateway.js';
import { allPages, everythingEntry, filesystemEntry, startGroupGateway, tempFolder, type GroupGateway } from './group-gateway.js';

const toolNames = async (client: Client): Promise<{ items: string[]; pages: number[] }> =>
  allPages(async (cursor) => {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    return { items: page.tools.map((t) => t.name), nextCursor: page.nextCursor };
  });

describe('groups: one URL for everything and server-filesystem (SDK v1 client)', () => {
  let gw: GroupGateway;
  let folder: ReturnType<typeof tempFolder>;
  before(async () => {
    folder = tempFolder();
    gw = await startGroupGateway(
      { everything: everythingEntry(), fs: filesystemEntry(folder.dir) },
      {
        work: { servers: ['everything', { server: 'fs', prefix: 'files', tools: { deny: ['write_*', 'edit_file', 'move_file'] } }], pageSize: 5 },
        readers: { servers: [{ server: 'fs', tools: { allow: ['read_*'] } }], separator: '.' },
      },
    );
  });
  after(async () => {
    await gw.stop();
    folder.remove();
  });

  it('lists the tools of both members, prefixed, in member order, five a page', async () => {
    const everything = await toolNames(await gw.connect('/everything/mcp'));
    const fs = await toolNames(await gw.connect('/fs/mcp'));
    const group = await toolNames(await gw.connect('/work/mcp'));
    const kept = fs.items.filter((n) => !/^write_|^edit_file$|^move_file$/.test(n));
    expect(kept.length).to.be.lessThan(fs.items.length);
    const expected = [...everything.items.map((n) => `everything__${n}`), ...kept.map((n) => `files__${n}`)];
    expect(group.items).to.deep.equal(expected);
    expect(group.pages.slice(0, -1).every((n) => n === 5)).to.equal(true);
    expect(group.pages.length).to.equal(Math.ceil(expected.length / 5));
  });

  it('answers the handshake as the group, with the members\' instructions combined', async () => {
    const client = await gw.connect('/work/mcp');
    expect(client.getServerVersion()?.name).to.equal('work');
    const instructions = client.getInstructions() ?? '';
    expect(instructions).to.include('This server is the group "work" of 2 servers');
    const own = (await gw.connect('/everything/mcp')).getInstructions() ?? '';
    expect(own.length).to.be.greaterThan(20);
    expect(instructions).to.include(`## everything__ (server "everything")\n${own.trim()}`);
  });

  it('merges prompts and resources, and reads a resource from the member that listed it', async () => {
    const direct = await gw.connect('/everything/mcp');
    const client = await gw.connect('/work/mcp');
    const prompts = await allPages(async (cursor) => {
      const page = await client.listPrompts(cursor === undefined ? {} : { cursor });
      return { items: page.prompts.map((p) => p.name), nextCursor: page.nextCursor };
    });
    const ownPrompts = (await direct.listPrompts()).prompts.map((p) => `everything__${p.name}`);
    expect(ownPrompts.length).to.be.greaterThan(0);
    expect(prompts.items).to.deep.equal(ownPrompts);
    const resources = await allPages(async (cursor) => {
      const page = await client.listResources(cursor === undefined ? {} : { cursor });
      return { items: page.resources.map((r) => r.uri), nextCursor: page.nextCursor };
    });
    const ownResources = await allPages(async (cursor) => {
      const page = await direct.listResources(cursor === undefined ? {} : { cursor });
      return { items: page.resources.map((r) => r.uri), nextCursor: page.nextCursor };
    });
    expect(resources.items).to.deep.equal(ownResources.items);
    expect(resources.items.length).to.be.greaterThan(0);
    const uri = resources.items[0]!;
    expect(await client.readResource({ uri })).to.deep.equal(await direct.readResource({ uri }));
  });

  it('calls a tool of each member with the prefix removed', async () => {
    const client = await gw.connect('/work/mcp');
    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'through the group' } });
    expect(echo.content).to.deep.equal([{ type: 'text', text: 'Echo: through the group' }]);
    const read = await client.callTool({ name: 'files__read_text_file', arguments: { path: folder.file } });
    expect(read.content).to.deep.equal([{ type: 'text', text: 'a note for the group\n' }]);
  });

  it('relays progress of a long call through the group', async () => {
    const client = await gw.connect('/work/mcp');
    const progress: number[] = [];
    const result = await client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress).to.deep.equal([1, 2, 3, 4]);
    expect(JSON.stringify(result.content)).to.include('completed');
  });

  it('routes a sampling request of a member to the group\'s client and its answer back', async () => {
    const client = await gw.connect('/work/mcp', { sampling: {} });
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
      model: 'group-model',
      role: 'assistant',
      content: { type: 'text', text: `sampled: ${JSON.stringify(req.params.messages[0]?.content)}` },
    }));
    const result = await client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'group-77', maxTokens: 5 } });
    const text = JSON.stringify(result.content);
    expect(text).to.include('group-model');
    expect(text).to.include('group-77');
  });

  it('neither lists nor calls a tool its deny filter leaves out', async () => {
    const client = await gw.connect('/work/mcp');
    const names = (await toolNames(client)).items;
    expect(names).to.not.include('files__write_file');
    const err = await client.callTool({ name: 'files__write_file', arguments: { path: `${folder.dir}/x.txt`, content: 'no' } }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(McpError);
    expect((err as McpError).message).to.equal('MCP error -32602: Unknown tool "files__write_file" in group "work": the tools filter of member "fs" leaves "write_file" out');
  });

  it('lists only what an allow filter lets through, with the group\'s own separator', async () => {
    const fs = (await toolNames(await gw.connect('/fs/mcp'))).items;
    const names = (await toolNames(await gw.connect('/readers/mcp'))).items;
    expect(names).to.deep.equal(fs.filter((n) => n.startsWith('read_')).map((n) => `fs.${n}`));
    expect(names.length).to.be.greaterThan(1);
  });

  it('answers a bare JSON-RPC call and an unknown prefix with a clear error', async () => {
    const res = await postJson(gw.url('/work/mcp'), { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'mail__send', arguments: {} } });
    expect(res.json).to.deep.equal({
      jsonrpc: '2.0',
      id: 7,
      error: { code: -32602, message: 'Unknown tool "mail__send" in group "work": its names start with a member\'s prefix ("everything__", "files__")' },
    });
  });

  it('serves the group over the legacy HTTP+SSE transport at /{group}/sse', async () => {
    const client = new Client({ name: 'group-sse-test', version: '1.0.0' });
    await client.connect(new SSEClientTransport(new URL(gw.url('/work/sse'))));
    try {
      const page = await client.listTools();
      expect(page.tools.map((t) => t.name)).to.deep.equal((await toolNames(await gw.connect('/work/mcp'))).items.slice(0, 5));
      const read = await client.callTool({ name: 'files__read_text_file', arguments: { path: folder.file } });
      expect(read.content).to.deep.equal([{ type: 'text', text: 'a note for the group\n' }]);
    } finally {
      await client.close();
    }
  });

  it('shows each group and the state of its members in /health', async () => {
    const health = (await (await fetch(gw.url('/health'))).json()) as { servers: Record<string, Record<string, unknown>> };
    expect(health.servers.work).to.include({ transport: 'group', ready: true });
    expect(health.servers.work!.group).to.deep.equal({ members: { everything: 'up', fs: 'up' } });
    expect(health.servers.readers!.group).to.deep.equal({ members: { fs: 'up' } });
  });
});
