import { expect } from 'chai';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { everythingEntry, filesystemEntry, startGroupGateway, tempFolder, type GroupGateway } from './group-gateway.js';

describe('groups with the SDK v2 client', () => {
  let gw: GroupGateway;
  let folder: ReturnType<typeof tempFolder>;
  before(async () => {
    folder = tempFolder();
    gw = await startGroupGateway({ everything: everythingEntry(), fs: filesystemEntry(folder.dir) }, { work: { servers: ['everything', 'fs'], pageSize: 4 } });
  });
  after(async () => {
    await gw.stop();
    folder.remove();
  });

  it('pages through the merged tools and calls a tool of each member', async () => {
    const client = new Client({ name: 'group-v2-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url('/work/mcp'))));
    try {
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor });
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      // the v2 client follows nextCursor itself: all pages of four arrive as one list, each name once
      expect(names.length).to.be.greaterThan(20);
      expect(new Set(names).size).to.equal(names.length);
      expect(names).to.include.members(['everything__echo', 'fs__read_text_file']);
      expect(names.every((n) => n.startsWith('everything__') || n.startsWith('fs__'))).to.equal(true);
      const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'v2' } });
      expect(echo.content).to.deep.equal([{ type: 'text', text: 'Echo: v2' }]);
      const read = await client.callTool({ name: 'fs__read_text_file', arguments: { path: folder.file } });
      expect(read.content).to.deep.equal([{ type: 'text', text: 'a note for the group\n' }]);
    } finally {
      await client.close();
    }
  });
});
