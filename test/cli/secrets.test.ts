import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RunningCli, suiteTempTree } from '../helpers/cli.js';
import { postJson } from '../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../helpers/oidc.js';
import { fixture } from '../helpers/paths.js';
import { skipWithout, startRedis, type RedisServer } from '../helpers/services.js';
import { get, pkceAuth } from '../plugins/auth-oauth2-pkce/pkce-gateway.js';

/** Every file under `dir` (contents as text), skipping what cannot be read. */
function filesUnder(dir: string): { path: string; text: string }[] {
  const found: { path: string; text: string }[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return found;
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      const stat = statSync(path);
      if (stat.isDirectory()) found.push(...filesUnder(path));
      else if (stat.isFile() && stat.size < 20_000_000) found.push({ path, text: readFileSync(path, 'latin1') });
    } catch {
      // gone, or not ours
    }
  }
  return found;
}

/*
 * README: "Tokens, codes, verifiers and secrets are never written to disk or to the log." (a verifier in Redis is sealed) End to end:
 * `fluidmcp run --log-level trace` with Redis as the store, a confidential client, a server that prints its
 * whole environment (its token included) to stderr, a login, calls, a refresh and calls with the new
 * token; then every secret is looked for in stdout, stderr, the working folder, $HOME and the temp folder.
 */
const tokenKey = '4f1c0e7a9b2d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6';

describe('cli: no secret reaches the log or the disk (fluidmcp run --log-level trace, Redis store)', function () {
  this.timeout(90_000);
  const tree = suiteTempTree();
  let redis: RedisServer | undefined;
  let oidc: OidcServer | undefined;
  let cli: RunningCli | undefined;

  before(async function () {
    skipWithout(this, 'redis-server');
    [redis, oidc] = await Promise.all([startRedis(), startOidcServer()]);
  });
  after(async () => {
    await cli?.stop();
    await redis?.stop();
    await oidc?.close();
  });

  it('logs the whole flow at trace level without a token, code, verifier, state or client secret anywhere', async () => {
    const work = join(tree.root, 'work');
    const home = join(tree.root, 'home');
    const tmp = join(tree.root, 'tmp');
    tree.write('home/.keep', '');
    tree.write('tmp/.keep', '');
    const config = tree.write('work/config.json', {
      mcpServers: {
        mailbox: {
          command: process.execPath,
          args: [fixture('env-to-stderr.mjs')],
          auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc!, { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET' }) },
        },
      },
    });
    const clientSecret = oidc!.confidentialClient.clientSecret!;
    cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0', '--log-level', 'trace', '--state-store', redis!.url(0)], {
      cwd: work,
      env: { HOME: home, TMPDIR: tmp, POST_CLIENT_ID: oidc!.confidentialClient.clientId, POST_CLIENT_SECRET: clientSecret, FMCP_TOKEN_KEYS: tokenKey },
    });
    const base = (await cli.ready()).replace('127.0.0.1', 'localhost');
    const secrets = new Map<string, string>([['client secret', clientSecret], ['token key', tokenKey]]);

    const callback = new URL(await loginThroughProvider(`${base}/mailbox/auth/login`));
    secrets.set('code', callback.searchParams.get('code')!);
    secrets.set('state', callback.searchParams.get('state')!);
    // the verifier waits in Redis (whose snapshots go to disk) sealed with the token key, never in clear
    const client = new Redis(redis!.url(0));
    try {
      const keys = await client.keys('*pending:*');
      const values = (await Promise.all(keys.map((k) => client.get(k)))).filter((v): v is string => v !== null);
      expect(values, 'the pending login in Redis').to.have.length(1);
      expect(values[0]).to.match(/^\{"sealed":"[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"\}$/);
      expect(values[0]).to.not.match(/verifier|mailbox/);
    } finally {
      client.disconnect();
    }

    const done = await get(callback.href);
    expect(done.status, done.text).to.equal(200);
    const tokens = done.body.token_data as Record<string, string>;
    for (const kind of ['access_token', 'refresh_token', 'id_token']) secrets.set(kind, tokens[kind]!);
    const whoami = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } };
    const call = await postJson(`${base}/mailbox/mcp`, whoami, { authorization: `Bearer ${tokens.access_token}` });
    expect(call.status, call.text).to.equal(200);
    expect(call.text).to.not.contain('isError');

    const refreshed = await fetch(`${base}/mailbox/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
    expect(refreshed.status).to.equal(200);
    const fresh = ((await refreshed.json()) as { token_data: Record<string, string> }).token_data;
    secrets.set('refreshed access_token', fresh.access_token!);
    if (fresh.refresh_token) secrets.set('refreshed refresh_token', fresh.refresh_token);
    const again = await postJson(`${base}/mailbox/mcp`, { ...whoami, id: 2 }, { authorization: `Bearer ${fresh.access_token}` });
    expect(again.status, again.text).to.equal(200);

    const stopped = await cli.stop();
    expect(stopped.code).to.equal(0);
    // the log is there, at trace level, and the server's stderr line was read: the search below means something
    expect(stopped.stderr.split('\n').length, 'log lines').to.be.greaterThan(20);
    expect(stopped.stderr).to.contain('env MAILBOX_ACCESS_TOKEN=[redacted]');
    expect(stopped.stderr).to.contain('server stderr');

    for (const [kind, value] of secrets) expect(value, kind).to.be.a('string').with.length.greaterThan(8);
    const places = [
      { path: 'stdout', text: stopped.stdout },
      { path: 'stderr', text: stopped.stderr },
      ...filesUnder(work),
      ...filesUnder(home),
      ...filesUnder(tmp),
      ...filesUnder(process.env.TMPDIR ?? '/tmp').filter((f) => !f.path.startsWith(tree.root)),
    ];
    const found: string[] = [];
    for (const [kind, value] of secrets) for (const place of places) if (place.text.includes(value)) found.push(`${kind} in ${place.path}`);
    expect(found).to.deep.equal([]);
  });
});
