import { expect } from 'chai';
import { webConsole } from '../../../index.js';
import { fixture } from '../../helpers/paths.js';
import { request, until } from '../../helpers/request.js';
import { startGroupGateway, type GroupGateway } from './group-gateway.js';

type ToolAnswer = { content: { text: string }[]; isError?: boolean };

describe('groups: a member whose process an operator stops', function () {
  this.timeout(60_000);
  let gw: GroupGateway;
  before(async () => {
    gw = await startGroupGateway({ counter: { command: process.execPath, args: [fixture('pid-counter.mjs')] } }, { g: { servers: ['counter'] } }, {}, [webConsole()]);
  });
  after(() => gw.stop());

  it('is told to the group\'s next call to it, and the group connects to the member afresh', async () => {
    const client = await gw.connect('/g/mcp');
    const count = async (): Promise<ToolAnswer> => (await client.callTool({ name: 'counter__count', arguments: {} })) as ToolAnswer;
    const before = (await count()).content[0]!.text;
    const port = gw.kernel.address().port;
    const stopped = await request(port, { method: 'POST', path: '/api/servers/counter/instances/shared/stop', headers: { 'x-fluidmcp-console': '1', 'content-type': 'application/json' }, body: '{}' });
    expect(stopped.status).to.equal(200);
    let refused: Error | undefined;
    await count().catch((err: Error) => (refused = err));
    expect(refused?.message).to.equal(
      'MCP error -32000: "tools/call" goes to member "counter" of group "g", which is down: it stopped and the gateway is restarting it (an operator stopped its process, which ended its session); the other members keep serving',
    );
    // that call made the group connect again: the member is back, in a new process that counts from 1
    const after = await until(async () => {
      const answer = await count().catch(() => undefined);
      return answer && !answer.isError ? answer.content[0]!.text : undefined;
    }, 15_000, 'the member to answer through the group again');
    expect(after.split(':')[0]).to.not.equal(before.split(':')[0]);
    expect(after.split(':')[1]).to.equal('1');
  });
});
