import { expect } from 'chai';
import { proxyJsonRpc, transportStdio, type ServerEntry } from '../../../index.js';
import { apiKeyAuth } from '../../../examples/plugins/api-key/index.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { envelope, modernPost } from '../../helpers/modern.js';

interface Rpc {
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

const ALICE = 'alice-key-5b1e9c0d7a3f2468';
const BOB = 'bob-key-2c7d4e9f1a0b3c58';

describe('proxy-jsonrpc: protocol 2026-07-28 for servers with auth', function () {
  let gw: TestGateway;
  before(async () => {
    const calc: ServerEntry = { ...everythingEntry(), auth: { type: 'api_key', keys_env: 'CALC_KEYS' } };
    gw = await startGateway(
      { calc, open: everythingEntry() },
      { plugins: [transportStdio({ stopGraceMs: 300 }), proxyJsonRpc({ cacheTtlMs: 5000 }), apiKeyAuth({ env: { CALC_KEYS: `alice:${ALICE},bob:${BOB}` } })] },
    );
  });
  after(() => gw.stop());

  it('marks the cacheable results of a server with auth "private" with ttlMs 0, and others with the configured default', async () => {
    const secured = (await modernPost(gw.url('/calc/mcp'), 1, 'tools/list', {}, { 'x-api-key': ALICE })).json as Rpc;
    expect(secured.result).to.include({ resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
    const open = (await modernPost(gw.url('/open/mcp'), 2, 'tools/list')).json as Rpc;
    expect(open.result).to.include({ resultType: 'complete', ttlMs: 5000, cacheScope: 'public' });
  });

  it('asks for the key before anything else', async () => {
    const res = await modernPost(gw.url('/calc/mcp'), 1, 'tools/list');
    expect(res.status).to.equal(401);
  });

  it('refuses a requestState issued to another caller', async () => {
    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'mine', maxTokens: 5 }, _meta: envelope({ sampling: {} }) };
    const first = (await modernPost(gw.url('/calc/mcp'), 1, 'tools/call', params, { 'x-api-key': ALICE })).json as Rpc;
    expect(first.result!.resultType).to.equal('input_required');
    const answer = { 'sampling-1': { model: 'm', role: 'assistant', content: { type: 'text', text: 'stolen' } } };
    const stolen = (await modernPost(gw.url('/calc/mcp'), 2, 'tools/call', { ...params, requestState: first.result!.requestState, inputResponses: answer }, { 'x-api-key': BOB })).json as Rpc;
    expect(stolen.error!.message).to.include('belongs to another caller');
    const own = (await modernPost(gw.url('/calc/mcp'), 3, 'tools/call', { ...params, requestState: first.result!.requestState, inputResponses: { 'sampling-1': { ...answer['sampling-1'], content: { type: 'text', text: 'own answer' } } } }, { 'x-api-key': ALICE })).json as Rpc;
    expect(JSON.stringify(own.result)).to.include('own answer');
  });
});
