import { expect } from 'chai';
import { postJson } from '../../helpers/gateway.js';
import { fixture } from '../../helpers/paths.js';
import { until } from '../../helpers/request.js';
import { startGroupGateway, type GroupGateway } from './group-gateway.js';

type Rpc = { result?: { content: { text: string }[] }; error?: { code: number; message: string } };
type Health = { servers: Record<string, { state: string; restarts: number; pid?: number; lastError?: string }> };

const TIMED_OUT = { code: -32001, message: 'Server "hang" did not answer within 300 ms; the call was cancelled' };

describe('groups: a member that hangs, called only through its group', function () {
  this.timeout(60_000);
  let gw: GroupGateway;
  before(async () => {
    gw = await startGroupGateway({ hang: { command: process.execPath, args: [fixture('hang-on-call.mjs')] } }, { gh: { servers: [{ server: 'hang', required: true }] } }, { callTimeoutMs: 300 });
  });
  after(() => gw.stop());

  let nextId = 1;
  const call = async (tool: string): Promise<Rpc> => (await postJson(gw.url('/gh/mcp'), { jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: `hang__${tool}`, arguments: {} } }, { accept: 'application/json' })).json as Rpc;
  const health = async (): Promise<Health> => (await fetch(gw.url('/health'))).json() as Promise<Health>;

  it('times out with the member named, and at the third timeout in a row the member is restarted', async () => {
    const first = await call('ok');
    const pid = first.result!.content[0]!.text;
    expect((await call('hang')).error).to.deep.equal(TIMED_OUT);
    expect((await call('ok')).error).to.deep.equal(TIMED_OUT);
    expect((await call('ok')).error).to.deep.equal({
      code: -32000,
      message: 'Server "hang" is unavailable: the process stopped answering (3 calls in a row had no answer within 300 ms, and it sent nothing meanwhile), so the gateway ended it; it is restarting, retry the call',
    });
    const after = await until(async () => (await call('ok')).result?.content[0]!.text, 15_000, 'the restarted member to answer through the group');
    expect(after).to.not.equal(pid);
    const hang = (await health()).servers.hang!;
    expect(hang.restarts).to.equal(1);
    expect(hang.pid).to.equal(Number(after));
    expect(hang.lastError).to.equal(`process ${pid} (command "${process.execPath}") stopped answering (3 calls in a row had no answer within 300 ms, and it sent nothing meanwhile), so the gateway ended it`);
    expect((await health()).servers.gh!.restarts).to.equal(0);
  });
});
