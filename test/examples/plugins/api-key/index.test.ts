import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { definePlugin, errors, proxyJsonRpc, sendJson, transportStdio, type ServerEntry } from '../../../../index.js';
import { apiKeyAuth, STRATEGY_KEY } from '../../../../examples/plugins/api-key/index.js';
import { everythingEntry, startGateway, type TestGateway } from '../../../helpers/gateway.js';
import { getEnv } from '../get-env.js';

const ALICE_KEY = 'alice-key-4f0c1b9d7e2a6c83';
const ALICE_NEXT_KEY = 'alice-next-key-93e1d0c7b5a2';
const BOB_KEY = 'bob-key-1d8e5f2a9c7b3e60';
const KEYS = `alice:${ALICE_KEY}, bob:${BOB_KEY},alice:${ALICE_NEXT_KEY}`;

const entry = (auth: Record<string, unknown>): ServerEntry => ({ ...everythingEntry(), auth: { type: 'api_key', ...auth } });

/** GET /{name}/whoami: the identity the server's strategy gave the request. */
const whoami = definePlugin({
  name: 'whoami',
  register(api) {
    api.route({ method: 'GET', path: '/:name/whoami', guard: 'name', handler: (ctx) => sendJson(ctx.res, 200, { ...ctx.identity }) });
  },
});

/** A gateway with only what an api_key server needs: stdio, the proxy, and the example plugin. */
function start(servers: Record<string, ServerEntry>, env: NodeJS.ProcessEnv = { CALC_KEYS: KEYS }): Promise<TestGateway> {
  return startGateway(servers, { plugins: [transportStdio({ stopGraceMs: 300 }), proxyJsonRpc(), apiKeyAuth({ env }), whoami] });
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

async function startFailure(servers: Record<string, ServerEntry>, env?: NodeJS.ProcessEnv): Promise<Error> {
  let gw: TestGateway | undefined;
  try {
    gw = await start(servers, env);
  } catch (err) {
    return err as Error;
  } finally {
    await gw?.stop();
  }
  throw new Error('expected the gateway not to start');
}

describe('examples/plugins/api-key', () => {
  describe('the auth block and the keys, checked at start', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['keys_env missing', {}, /mcpServers\.calc\.auth\.keys_env: expected the name of an environment variable/],
      ['keys_env not a variable name', { keys_env: 'my keys' }, /mcpServers\.calc\.auth\.keys_env: expected the name of an environment variable/],
      ['identity_env not a variable name', { keys_env: 'CALC_KEYS', identity_env: 42 }, /mcpServers\.calc\.auth\.identity_env: expected the name of an environment variable/],
      ['an unknown field (a typo)', { key_env: 'CALC_KEYS' }, /mcpServers\.calc\.auth\.key_env: unknown field for "api_key" \(known: type, keys_env, identity_env\)/],
    ];
    for (const [what, auth, message] of cases) {
      it(`refuses ${what}, naming the file and field`, async () => {
        const err = await startFailure({ calc: entry(auth) });
        expect(errors.FMCP_ERR_CONFIG_INVALID.is(err), err.message).to.equal(true);
        expect(err.message).to.match(message).and.include('test-config.json');
      });
    }

    const keyCases: [string, string | undefined, RegExp][] = [
      ['unset', undefined, /the environment variable CALC_KEYS is not set: export CALC_KEYS="alice:<key>,bob:<key>"/],
      ['without a colon', `alice:${ALICE_KEY},${BOB_KEY}`, /entry 2 of CALC_KEYS is not "name:key"/],
      ['with a bad name', `al ice:${ALICE_KEY}`, /entry 1 of CALC_KEYS: the name must be 1-64 letters/],
      ['with a short key', 'alice:short-key', /entry 1 of CALC_KEYS \("alice"\): the key must be at least 16 characters/],
      ['with a key shared by two names', `alice:${ALICE_KEY},bob:${ALICE_KEY}`, /entry 2 of CALC_KEYS \("bob"\) reuses the key of "alice"/],
    ];
    for (const [what, value, message] of keyCases) {
      it(`refuses keys ${what}, without repeating any key`, async () => {
        const err = await startFailure({ calc: entry({ keys_env: 'CALC_KEYS' }) }, value === undefined ? {} : { CALC_KEYS: value });
        expect(err.message).to.match(/mcpServers\.calc\.auth\.keys_env: /).and.match(message);
        expect(err.message).to.not.include(ALICE_KEY).and.not.include('short-key');
      });
    }
  });

  describe('over HTTP', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await start({ calc: entry({ keys_env: 'CALC_KEYS' }), named: entry({ keys_env: 'CALC_KEYS', identity_env: 'CALLER_NAME' }) });
    });
    after(() => gw?.stop());

    it('registers under "api_key" and claims the servers', () => {
      expect(gw.kernel.authStrategies.owner(STRATEGY_KEY)).to.equal('api-key');
      expect(gw.kernel.servers.get('calc')!.auth).to.equal('api_key');
    });

    it('answers 401 without a key, saying how to send one', async () => {
      const res = await getEnv(gw.base, 'calc');
      expect(res.status).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="calc"');
      expect(res.error).to.deep.equal({
        code: 'FMCP_ERR_UNAUTHORIZED',
        message: '"calc" needs an API key: send it as "X-API-Key: <key>" or "Authorization: Bearer <key>"',
      });
    });

    it('answers 401 to a wrong key, a key of another length, and an Authorization that is not Bearer', async () => {
      const wrong: Record<string, string>[] = [{ 'x-api-key': `${ALICE_KEY.slice(0, -1)}0` }, { 'x-api-key': 'x' }, { authorization: `Bearer ${BOB_KEY}x` }];
      for (const headers of wrong) {
        const res = await getEnv(gw.base, 'calc', headers);
        expect(res.status, JSON.stringify(headers)).to.equal(401);
        expect(res.error!.message).to.equal('The API key sent to "calc" is not valid: check it, or ask the gateway\'s operator for one');
      }
      const basic = await getEnv(gw.base, 'calc', { authorization: `Basic ${Buffer.from(`alice:${ALICE_KEY}`).toString('base64')}` });
      expect(basic.status).to.equal(401);
      expect(basic.error!.message).to.match(/^The Authorization header for "calc" is not "Bearer <key>"/);
    });

    it('lets a right key through: the server sees the caller\'s name, never the key', async () => {
      const alice = await getEnv(gw.base, 'calc', { 'x-api-key': ALICE_KEY });
      expect(alice.status).to.equal(200);
      expect(alice.env!.FMCP_CALLER).to.equal('alice');
      expect(Object.values(alice.env!)).to.not.include(ALICE_KEY);

      const bob = await getEnv(gw.base, 'calc', { authorization: `Bearer ${BOB_KEY}` });
      expect(bob.env!.FMCP_CALLER).to.equal('bob');
    });

    it('makes the identity from the caller\'s name: a hash as its key, the name as its subject', async () => {
      for (const key of [ALICE_KEY, ALICE_NEXT_KEY]) {
        const res = await fetch(`${gw.base}/calc/whoami`, { headers: { 'x-api-key': key } });
        expect(await res.json()).to.deep.equal({ key: sha256('alice'), env: { FMCP_CALLER: 'alice' }, subject: 'alice' });
      }
    });

    it('gives each caller its own process, and a caller\'s two keys the same one', async () => {
      // by itself: alice with both her keys, and bob (earlier tests of this suite call only these two)
      const callers: Record<string, string>[] = [{ 'x-api-key': ALICE_KEY }, { 'x-api-key': ALICE_NEXT_KEY }, { authorization: `Bearer ${BOB_KEY}` }];
      for (const headers of callers) {
        expect((await getEnv(gw.base, 'calc', headers)).status).to.equal(200);
      }
      const health = (await (await fetch(`${gw.base}/health`)).json()) as { servers: Record<string, { auth: string; instances: number }> };
      expect(health.servers.calc).to.include({ auth: 'api_key', instances: 2 });
    });

    it('puts the caller\'s name in the variable identity_env names', async () => {
      const res = await getEnv(gw.base, 'named', { 'x-api-key': BOB_KEY });
      expect(res.env!.CALLER_NAME).to.equal('bob');
      expect(res.env!.FMCP_CALLER).to.equal(undefined);
    });
  });
});
