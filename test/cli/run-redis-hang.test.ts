import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { everythingMetadata, processesWith, RunningCli, runCli, suiteTempTree } from '../helpers/cli.js';
import { postJson } from '../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../helpers/oidc.js';
import { skipWithout, startRedis, type RedisServer } from '../helpers/services.js';
import { closedPort, errorCode, get, mailboxEntry, pkceAuth } from '../plugins/auth-oauth2-pkce/pkce-gateway.js';

/*
 * docs/deploy.md: with Redis as the pending-state store, a Redis that hangs (SIGSTOP: it keeps its
 * connections and answers nothing) makes a login start or callback answer 503 within 2 s with the default
 * settings, and Bearer calls go on; a Redis unreachable at start stops `fluidmcp run` before any server runs.
 */
describe('cli: fluidmcp run --state-store with a Redis that hangs or is not there', function () {
  this.timeout(60_000);
  const tree = suiteTempTree();
  const marker = `fmcp-redis-hang-${randomUUID()}`;
  let redis: RedisServer | undefined;
  let oidc: OidcServer | undefined;
  let cli: RunningCli | undefined;

  before(async function () {
    skipWithout(this, 'redis-server');
    [redis, oidc] = await Promise.all([startRedis(), startOidcServer()]);
  });
  after(async () => {
    redis?.resume();
    await cli?.stop();
    await redis?.stop();
    await oidc?.close();
  });

  it('answers a login start and a callback with 503 within 2 s while Redis hangs, and keeps serving Bearer calls', async () => {
    const config = tree.write('config.json', {
      mcpServers: { ...everythingMetadata(['everything'], marker).mcpServers, mailbox: mailboxEntry(pkceAuth(oidc!)) },
      stateStore: redis!.url(0),
    });
    cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0'], { env: { MAILBOX_CLIENT_ID: oidc!.publicClient.clientId, FMCP_TOKEN_KEYS: '4f1c0e7a9b2d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6' } });
    const base = (await cli.ready()).replace('127.0.0.1', 'localhost');
    const done = await get(await loginThroughProvider(`${base}/mailbox/auth/login`));
    expect(done.status, done.text).to.equal(200);
    const token = (done.body.token_data as { access_token: string }).access_token;
    const pending = await loginThroughProvider(`${base}/mailbox/auth/login`);

    redis!.pause();
    try {
      const timed = async (url: string) => {
        const started = Date.now();
        const answer = await get(url);
        return { ...answer, ms: Date.now() - started };
      };
      const login = await timed(`${base}/mailbox/auth/login`);
      expect(login.status, login.text).to.equal(503);
      expect(errorCode(login.body)).to.equal('FMCP_ERR_STATE_STORE');
      expect(login.ms, 'the login start answered after').to.be.below(2000);
      const callback = await timed(pending);
      expect(callback.status, callback.text).to.equal(503);
      expect(errorCode(callback.body)).to.equal('FMCP_ERR_STATE_STORE');
      expect(callback.ms, 'the callback answered after').to.be.below(2000);

      const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } };
      const bearer = await postJson(`${base}/mailbox/mcp`, call, { authorization: `Bearer ${token}` });
      expect(bearer.status, bearer.text).to.equal(200);
      expect((bearer.json as { result?: unknown }).result, bearer.text).to.not.equal(undefined);
      const echo = await postJson(`${base}/everything/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'still here' } } });
      expect((echo.json as { result: { content: { text: string }[] } }).result.content[0]!.text).to.equal('Echo: still here');
    } finally {
      redis!.resume();
    }
    const again = await get(`${base}/mailbox/auth/login`);
    expect(again.status, again.text).to.equal(302);
  });

  it('starts no server process when Redis is unreachable at start, and exits with one line', async () => {
    const other = `${marker}-unreachable`;
    const config = tree.write('unreachable.json', { ...everythingMetadata(['everything'], other), stateStore: `redis://127.0.0.1:${await closedPort()}/0` });
    let seen = 0;
    const sampler = setInterval(() => (seen = Math.max(seen, processesWith(other).length)), 10);
    try {
      const result = await runCli(['run', '--file', config, '--start-server', '--port', '0']);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/^fluidmcp: The pending-state store is unavailable: cannot use Redis at redis:\/\/127\.0\.0\.1:\d+\/0: connect ECONNREFUSED/);
    } finally {
      clearInterval(sampler);
    }
    expect(seen, 'server processes seen while fluidmcp ran').to.equal(0);
  });
});
