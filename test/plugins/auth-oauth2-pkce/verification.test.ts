import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metricsPrometheus, type AuthStrategy } from '../../../index.js';
import { errorLines, RunningCli, runCli, tempTree } from '../../helpers/cli.js';
import { postJson, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { parseMetrics, sampleValue } from '../../helpers/prometheus.js';
import { clientEnv, closedPort, errorCode, errorMessage, get, mailboxEntry, pkceAuth, redirectUris, startPkceGateway } from './pkce-gateway.js';

const sha12 = (token: string): string => createHash('sha256').update(token).digest('hex').slice(0, 12);

interface Whoami {
  user: string;
  token_sha256: string;
  pid: number;
}

const call = (gw: TestGateway, name: string, token: string) =>
  postJson(gw.url(`/${name}/mcp`), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, { authorization: `Bearer ${token}` });

async function whoami(gw: TestGateway, name: string, token: string): Promise<Whoami> {
  const res = await call(gw, name, token);
  expect(res.status, res.text).to.equal(200);
  return JSON.parse((res.json as { result: { content: { text: string }[] } }).result.content[0]!.text) as Whoami;
}

/** Live server processes of `name`, as /health shows them. */
async function processCount(gw: TestGateway, name: string): Promise<number> {
  const health = await get(gw.url('/health'));
  const entry = (health.body.servers as Record<string, { processes?: unknown }>)[name]!;
  return Array.isArray(entry.processes) ? entry.processes.length : Number(entry.processes);
}

async function tokenOf(gw: TestGateway, name: string, login: string): Promise<string> {
  const res = await get(await loginThroughProvider(gw.url(`/${name}/auth/login`), { login }));
  expect(res.status, res.text).to.equal(200);
  return String((res.body.token_data as Record<string, unknown>).access_token);
}

async function metrics(gw: TestGateway): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics((await get(gw.url('/metrics'))).text);
}

const bannerOf = (gw: TestGateway, name: string): string[] => {
  const server = gw.kernel.servers.get(name)!;
  const strategy = gw.kernel.authStrategies.get(server.auth!) as AuthStrategy;
  return strategy.banner!(server, 'http://localhost:1').lines ?? [];
};

/** Polls `check` every 50 ms until it returns true; fails after `ms`. */
async function eventually(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An HTTP server that answers 404 to everything: a provider that publishes no metadata. */
async function bareProvider(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('auth-oauth2-pkce: every Bearer token is verified before anything is served or started', function () {
  this.timeout(120_000);
  let oidc: OidcServer;
  const gateways: TestGateway[] = [];
  const started = async (g: Promise<TestGateway>): Promise<TestGateway> => {
    const gw = await g;
    gateways.push(gw);
    return gw;
  };

  before(async () => {
    oidc = await startOidcServer({ redirectUris: redirectUris(), revocationAndIntrospection: true });
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await oidc?.close();
  });

  describe('without validate_url: the provider\'s own endpoint, found through its metadata', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await started(startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { extraPlugins: [metricsPrometheus({ defaultMetrics: false })] }));
    });

    it('finds the userinfo endpoint in the OpenID discovery document and says so in the banner', async () => {
      const discovery = await get(`${oidc.issuer}/.well-known/openid-configuration`);
      expect(discovery.body).to.deep.include({ issuer: oidc.issuer, authorization_endpoint: oidc.authorizationUrl, userinfo_endpoint: oidc.userinfoUrl });
      expect(bannerOf(gw, 'mailbox')).to.deep.equal([
        '  Login: http://localhost:1/mailbox/auth/login',
        `  Tokens verified at the provider's userinfo endpoint ${oidc.userinfoUrl} (found in ${oidc.issuer}/.well-known/openid-configuration)`,
      ]);
    });

    it('answers forty made-up tokens with 401 invalid_token, starts no process, and counts them in /metrics', async () => {
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call(gw, 'mailbox', `junk-${i}`)));
      for (const res of answers) {
        expect(res.status).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.match(/^Bearer realm="mailbox", error="invalid_token", resource_metadata="http:\/\/[^"]+\/\.well-known\/oauth-protected-resource\/mailbox\/mcp", scope="openid profile mail\.read"$/);
        expect(errorMessage(res.json as Record<string, unknown>)).to.match(/^The provider rejected the token sent to "mailbox" \(it may have expired or been revoked\): sign in at /);
      }
      expect(await processCount(gw, 'mailbox')).to.equal(0);
      const samples = await metrics(gw);
      expect(sampleValue(samples, 'fluidmcp_auth_rejected_total', { package: 'mailbox' })).to.equal(40);
      expect(sampleValue(samples, 'fluidmcp_server_starts_total', { package: 'mailbox' })).to.equal(0);
    });

    it('serves a real token from a login', async () => {
      const token = await tokenOf(gw, 'mailbox', 'alice');
      const me = await whoami(gw, 'mailbox', token);
      expect(me.token_sha256).to.equal(sha12(token));
      expect(await processCount(gw, 'mailbox')).to.equal(1);
    });
  });

  it('uses the introspection endpoint (RFC 7662) when the package has a client secret', async () => {
    const gw = await started(startPkceGateway(oidc, { 'mailbox-post': mailboxEntry(pkceAuth(oidc, { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET' })) }));
    expect(bannerOf(gw, 'mailbox-post')[1]).to.equal(`  Tokens verified at the provider's introspection endpoint ${oidc.issuer}/token/introspection (found in ${oidc.issuer}/.well-known/openid-configuration)`);
    const token = await tokenOf(gw, 'mailbox-post', 'carol');
    expect((await whoami(gw, 'mailbox-post', token)).token_sha256).to.equal(sha12(token));
    const junk = await call(gw, 'mailbox-post', 'junk-introspected');
    expect(junk.status).to.equal(401);
    expect(junk.headers.get('www-authenticate')).to.match(/^Bearer realm="mailbox-post", error="invalid_token", resource_metadata="http:\/\/[^"]+\/\.well-known\/oauth-protected-resource\/mailbox-post\/mcp", scope="openid profile mail\.read"$/);
    expect(await processCount(gw, 'mailbox-post')).to.equal(1);
  });

  it('stops serving a revoked token within the cache lifetime', async () => {
    const gw = await started(startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { plugin: { validationCacheMs: 300 } }));
    const token = await tokenOf(gw, 'mailbox', 'dave');
    await whoami(gw, 'mailbox', token);
    const revoked = await fetch(`${oidc.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: oidc.publicClient.clientId }).toString(),
    });
    expect(revoked.status).to.equal(200);
    expect((await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${token}` } })).status).to.equal(401);
    let last: Awaited<ReturnType<typeof call>> | undefined;
    await eventually('a 401 for the revoked token', 5000, async () => (last = await call(gw, 'mailbox', token)).status === 401);
    expect(last!.headers.get('www-authenticate')).to.match(/^Bearer realm="mailbox", error="invalid_token", resource_metadata="http:\/\/[^"]+\/\.well-known\/oauth-protected-resource\/mailbox\/mcp", scope="openid profile mail\.read"$/);
  });

  it('answers 503 when the provider cannot be reached, and starts nothing', async () => {
    const own = await startOidcServer({ redirectUris: redirectUris() });
    const gw = await started(startPkceGateway(own, { mailbox: mailboxEntry(pkceAuth(own)) }));
    await own.close();
    const res = await call(gw, 'mailbox', 'a-token-nobody-can-check');
    expect(res.status).to.equal(503);
    expect(errorCode(res.json as Record<string, unknown>)).to.equal('FMCP_ERR_AUTH_UNAVAILABLE');
    expect(errorMessage(res.json as Record<string, unknown>)).to.equal(
      `Cannot check the credentials sent to "mailbox": the provider cannot be reached at the provider's userinfo endpoint ${own.userinfoUrl} (connection refused), so the token was neither accepted nor refused. Try again shortly; if it lasts, check that the provider is up`,
    );
    expect(await processCount(gw, 'mailbox')).to.equal(0);
  });

  it('stops start-up when the provider\'s metadata cannot be read at all, saying so', async () => {
    const port = await closedPort();
    const entry = mailboxEntry(pkceAuth(oidc, { authorization_url: `http://127.0.0.1:${port}/auth` }));
    const err = await startPkceGateway(oidc, { mailbox: entry }).then(
      (gw) => gw.stop().then(() => undefined),
      (e: Error) => e,
    );
    expect(err?.message).to.match(
      new RegExp(`^.*test-config\\.json: mcpServers\\.mailbox\\.auth: cannot verify the Bearer tokens of "mailbox": its provider's metadata could not be read: nothing answered at http://127\\.0\\.0\\.1:${port}/\\.well-known/openid-configuration and 1 more\\. Set auth\\.validate_url`),
    );
  });

  describe('fluidmcp run', () => {
    const tree = tempTree();
    const running: RunningCli[] = [];
    let bare: Awaited<ReturnType<typeof bareProvider>>;
    const env = (): Record<string, string> => ({ ...clientEnv(oidc), FMCP_PACKAGES_DIR: tree.root });
    const config = (auth: Record<string, unknown>): string =>
      tree.write(`config-${Object.keys(auth).join('-')}.json`, { mcpServers: { gmail: mailboxEntry({ ...pkceAuth(oidc), authorization_url: `${bare.url}/o/oauth2/v2/auth`, ...auth }) } });

    before(async () => {
      bare = await bareProvider();
    });
    after(async () => {
      await Promise.all(running.map((r) => r.stop()));
      await bare.close();
      tree.remove();
    });

    it('stops at start-up, in one line naming the package, when its provider publishes no metadata and there is no validate_url', async () => {
      const file = config({});
      const result = await runCli(['run', '--file', file, '--start-server', '--port', '0'], { cwd: tree.root, env: env(), timeout: 30_000 });
      expect(result.code).to.not.equal(0);
      expect(errorLines(result.stderr)).to.deep.equal([
        `fluidmcp: ${file}: mcpServers.gmail.auth: cannot verify the Bearer tokens of "gmail": its provider publishes no OpenID or RFC 8414 metadata naming ${bare.url}/o/oauth2/v2/auth as its authorization endpoint (tried ${bare.url}/o/oauth2/v2/.well-known/openid-configuration and 10 more). Set auth.validate_url to an endpoint that answers 2xx for a good token (such as the provider's userinfo or tokeninfo endpoint), or set "validate": "none" to accept unverified tokens knowingly`,
      ]);
      expect(result.stdout).to.not.contain('ready at');
    });

    it('with "validate": "none", starts and says in plain words that tokens are not verified', async () => {
      const cli = new RunningCli(['run', '--file', config({ validate: 'none' }), '--start-server', '--port', '0'], { cwd: tree.root, env: env() });
      running.push(cli);
      await cli.ready(30_000);
      expect(cli.stdout).to.contain(
        'Added gmail endpoints with OAuth support\n' +
          '  Login: http://localhost:',
      );
      expect(cli.stdout).to.contain(
        '\n  WARNING: tokens are NOT verified ("validate": "none"): any Bearer token is accepted and reaches the server. Callers whose token this gateway did not hand out share 4 processes\n',
      );
    });
  });

  it('with "validate": "none", real users\' processes survive a flood of made-up tokens', async () => {
    const gw = await started(
      startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc, { validate: 'none' })) }, { proxy: { maxInstances: 2, instanceEvictIdleMs: 0 }, plugin: { unverifiedProcesses: 2 } }),
    );
    const alice = await tokenOf(gw, 'mailbox', 'alice');
    const bob = await tokenOf(gw, 'mailbox', 'bob');
    const before = [await whoami(gw, 'mailbox', alice), await whoami(gw, 'mailbox', bob)];
    for (let i = 0; i < 40; i++) {
      const me = await whoami(gw, 'mailbox', `made-up-${i}`);
      expect(me.token_sha256).to.equal(sha12(`made-up-${i}`));
    }
    await eventually('evicted made-up callers\' processes to stop', 10_000, async () => (await processCount(gw, 'mailbox')) <= 4);
    const after = [await whoami(gw, 'mailbox', alice), await whoami(gw, 'mailbox', bob)];
    expect(after.map((w) => w.pid)).to.deep.equal(before.map((w) => w.pid));
  });
});
