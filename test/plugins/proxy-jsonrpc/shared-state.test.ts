import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';

/**
 * What README says a shared process shares: the server's own state. A resource one session makes with a
 * tool of server-everything is seen by every session of that process, and by no other session with
 * `"isolation": "session"`.
 */
describe('proxy-jsonrpc: a server\'s own state is per process, as README says', function () {
  this.timeout(60_000);
  let gw: TestGateway;
  const clients: Client[] = [];
  before(async () => {
    gw = await startGateway({ everything: everythingEntry(), isolated: { ...everythingEntry(), isolation: 'session' } });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  });
  after(() => gw.stop());

  const connect = async (server: string): Promise<Client> => {
    const client = new Client({ name: 'shared-state', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url(`/${server}/mcp`))));
    clients.push(client);
    return client;
  };
  const uri = 'demo://resource/session/alice-notes.txt.gz';
  const makeResource = (client: Client) =>
    client.callTool({ name: 'gzip-file-as-resource', arguments: { name: 'alice-notes.txt.gz', data: 'data:text/plain;base64,c2VjcmV0', outputType: 'resourceLink' } });
  const listed = async (client: Client): Promise<boolean> => (await client.listResources()).resources.some((r) => r.uri === uri);

  it('on a shared process, another session lists and reads the resource a session made', async () => {
    const alice = await connect('everything');
    const bob = await connect('everything');
    await makeResource(alice);
    expect(await listed(bob)).to.equal(true);
    const read = await bob.readResource({ uri });
    expect(read.contents.map((c) => c.uri)).to.deep.equal([uri]);
  });

  it('with "isolation": "session", another session neither lists nor reads it', async () => {
    const alice = await connect('isolated');
    const bob = await connect('isolated');
    await makeResource(alice);
    expect(await listed(alice)).to.equal(true);
    expect(await listed(bob)).to.equal(false);
    let error: Error | undefined;
    await bob.readResource({ uri }).catch((err: Error) => (error = err));
    expect(error?.message).to.equal(`MCP error -32602: MCP error -32602: Resource ${uri} not found`);
  });
});
