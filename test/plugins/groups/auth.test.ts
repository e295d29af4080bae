import { expect } from 'chai';
import { join } from 'node:path';
import { apiKeyAuth } from '../../../examples/plugins/api-key/index.js';
import { postJson } from '../../helpers/gateway.js';
import { repoRoot } from '../../helpers/paths.js';
import { everythingEntry, startGroupGateway, type GroupGateway } from './group-gateway.js';

const envServer = { command: process.execPath, args: [join(repoRoot, 'test', 'examples', 'plugins', 'env-server.mjs')], auth: { type: 'api_key', keys_env: 'GROUP_KEYS' } };
const ALICE = 'alice-key-7d1e0c93b2';
const BOB = 'bob-key-2c8f4a61e5';

describe('groups: members that share one auth block', () => {
  let gw: GroupGateway;
  before(async () => {
    gw = await startGroupGateway(
      { mail: envServer, calendar: envServer, everything: everythingEntry() },
      { team: { servers: ['mail', 'calendar', 'everything'] } },
      {},
      [apiKeyAuth({ env: { GROUP_KEYS: `alice:${ALICE},bob:${BOB}` } })],
    );
  });
  after(() => gw.stop());

  const call = (key: string | undefined, name: string, args: Record<string, unknown> = {}): ReturnType<typeof postJson> =>
    postJson(gw.url('/team/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }, key ? { 'x-api-key': key } : {});
  const caller = async (key: string, name: string): Promise<string> => {
    const res = await call(key, name);
    const text = (res.json as { result: { content: { text: string }[] } }).result.content[0]!.text;
    return (JSON.parse(text) as Record<string, string>).FMCP_CALLER!;
  };

  it('asks for the members\' credentials at the group\'s URL', async () => {
    const res = await call(undefined, 'mail__get-env');
    expect(res.status).to.equal(401);
  });

  it('calls each member with auth as the group\'s caller, and the member without auth as anyone', async () => {
    expect(await caller(ALICE, 'mail__get-env')).to.equal('alice');
    expect(await caller(ALICE, 'calendar__get-env')).to.equal('alice');
    expect(await caller(BOB, 'mail__get-env')).to.equal('bob');
    const echo = await call(BOB, 'everything__echo', { message: 'team' });
    expect(echo.json).to.deep.equal({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'Echo: team' }] } });
  });
});
