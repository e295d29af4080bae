import { expect } from 'chai';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { definePlugin, errors, proxyJsonRpc, sendJson, transportStdio, type ServerEntry } from '../../../../index.js';
import { identityKeyOf, oauth2ClientCredentials, STRATEGY_KEY } from '../../../../examples/plugins/oauth2-client-credentials/index.js';
import { everythingEntry, startGateway, type TestGateway } from '../../../helpers/gateway.js';
import { until } from '../../../helpers/request.js';
import { startCcProvider, type CcProvider } from '../cc-provider.js';
import { getEnv } from '../get-env.js';

const whoami = definePlugin({
  name: 'whoami',
  register(api) {
    api.route({ method: 'GET', path: '/:name/whoami', guard: 'name', handler: (ctx) => sendJson(ctx.res, 200, { key: ctx.identity.key, subject: ctx.identity.subject }) });
  },
});

const entry = (auth: Record<string, unknown>): ServerEntry => ({
  ...everythingEntry(),
  auth: { type: 'oauth2', flow: 'client_credentials', client_id_env: 'REPORTS_CLIENT_ID', client_secret_env: 'REPORTS_CLIENT_SECRET', env_var_name: 'REPORTS_TOKEN', ...auth },
});


/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function start(servers: Record<string, ServerEntry>, env: NodeJS.ProcessEnv, timeoutMs = 10_000): Promise<TestGateway> {
  return startGateway(servers, { plugins: [transportStdio({ stopGraceMs: 300 }), proxyJsonRpc(), oauth2ClientCredentials({ env, timeoutMs }), whoami] });
}

async function startFailure(servers: Record<string, ServerEntry>, env: NodeJS.ProcessEnv = {}): Promise<Error> {
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

describe('examples/plugins/oauth2-client-credentials', () => {
  describe('the auth block and the client, checked at start', () => {
    const url = 'http://127.0.0.1:9/token';
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['no token_url', {}, /auth\.token_url: expected the URL of the provider's token endpoint/],
      ['a client_secret_env that is not a variable name', { token_url: url, client_secret_env: 'the secret' }, /auth\.client_secret_env: expected the name of an environment variable/],
      ['scopes that are not a list', { token_url: url, scopes: 'reports.read' }, /auth\.scopes: expected a list of scope strings/],
      ['extra_params that set grant_type', { token_url: url, extra_params: { grant_type: 'password' } }, /auth\.extra_params\.grant_type: "grant_type" is set by the gateway itself: remove it/],
      ['token_endpoint_auth_method "none"', { token_url: url, token_endpoint_auth_method: 'none' }, /auth\.token_endpoint_auth_method: expected "client_secret_basic" or "client_secret_post"/],
      ['an unknown field (a typo)', { token_url: url, scope: ['x'] }, /auth\.scope: unknown field for "oauth2" with "client_credentials"/],
    ];
    for (const [what, auth, message] of cases) {
      it(`refuses ${what}, naming the file and field`, async () => {
        const err = await startFailure({ reports: entry(auth) }, { REPORTS_CLIENT_ID: 'id', REPORTS_CLIENT_SECRET: 'secret' });
        expect(errors.FMCP_ERR_CONFIG_INVALID.is(err), err.message).to.equal(true);
        expect(err.message).to.include('test-config.json: mcpServers.reports.').and.match(message);
      });
    }

    it('refuses to start without the client id or secret in the environment, saying what to export', async () => {
      const noId = await startFailure({ reports: entry({ token_url: url }) }, { REPORTS_CLIENT_SECRET: 'secret' });
      expect(noId.message).to.match(/mcpServers\.reports\.auth\.client_id_env: client_id not found: the environment variable REPORTS_CLIENT_ID is not set\. Run export REPORTS_CLIENT_ID="<your client id>"/);
      const noSecret = await startFailure({ reports: entry({ token_url: url }) }, { REPORTS_CLIENT_ID: 'id' });
      expect(noSecret.message).to.match(/mcpServers\.reports\.auth\.client_secret_env: client_secret not found: .*REPORTS_CLIENT_SECRET/);
    });
  });

  describe('against oidc-provider on loopback', function () {
    let long: CcProvider;
    let short: CcProvider;
    let flaky: CcProvider;
    let gw: TestGateway;
    let slowGw: TestGateway;

    before(async () => {
      [long, short, flaky] = await Promise.all([startCcProvider(3600), startCcProvider(4), startCcProvider(4)]);
      const basic = { REPORTS_CLIENT_ID: long.basicClient.clientId, REPORTS_CLIENT_SECRET: long.basicClient.clientSecret };
      const env = { ...basic, POST_CLIENT_ID: long.postClient.clientId, POST_CLIENT_SECRET: long.postClient.clientSecret, WRONG_SECRET: 'not-the-secret' };
      gw = await start(
        {
          reports: entry({ token_url: long.tokenUrl, scopes: ['reports.read'] }),
          'reports-post': entry({ token_url: long.tokenUrl, client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET', token_endpoint_auth_method: 'client_secret_post' }),
          'wrong-secret': entry({ token_url: long.tokenUrl, client_secret_env: 'WRONG_SECRET' }),
          'wrong-scope': entry({ token_url: long.tokenUrl, scopes: ['reports.write'] }),
          unreachable: entry({ token_url: `http://127.0.0.1:${await closedPort()}/token` }),
          'short-lived': entry({ token_url: short.tokenUrl }),
          flaky: entry({ token_url: flaky.tokenUrl }),
        },
        env,
      );
      slowGw = await start({ hanging: entry({ token_url: flaky.tokenUrl }) }, basic, 300);
    });

    after(async () => {
      await Promise.all([gw?.stop(), slowGw?.stop()]);
      await Promise.all([long?.close(), short?.close(), flaky?.close()]);
    });

    it('registers under "oauth2/client_credentials"', () => {
      expect(gw.kernel.authStrategies.owner(STRATEGY_KEY)).to.equal('oauth2-client-credentials');
      expect(gw.kernel.servers.get('reports')!.auth).to.equal(STRATEGY_KEY);
    });

    it('serves a caller with no credentials: the server gets a token the provider issued to the client', async () => {
      const res = await getEnv(gw.base, 'reports');
      expect(res.status, JSON.stringify(res.error)).to.equal(200);
      const token = res.env!.REPORTS_TOKEN!;
      expect(token).to.be.a('string').and.not.equal('');
      const info = await long.introspect(token, long.basicClient);
      expect(info).to.include({ active: true, client_id: long.basicClient.clientId, scope: 'reports.read' });
      // the provider serves other servers of this suite too: this server's own count is in /health
      const health = (await (await fetch(`${gw.base}/health`)).json()) as { servers: Record<string, Record<string, unknown>> };
      expect(health.servers.reports).to.include({ token_requests: 1 });
      expect(long.tokenRequests).to.deep.include({ basic: true, form: { grant_type: 'client_credentials', scope: 'reports.read' } });
    });

    it('reuses the cached token: a second call sends no token request and lands in the same process', async () => {
      const first = await getEnv(gw.base, 'reports');
      const sent = long.tokenRequests.length;
      const second = await getEnv(gw.base, 'reports');
      expect(second.env!.REPORTS_TOKEN).to.equal(first.env!.REPORTS_TOKEN);
      expect(long.tokenRequests).to.have.length(sent);
      const health = (await (await fetch(`${gw.base}/health`)).json()) as { servers: Record<string, Record<string, unknown>> };
      expect(health.servers.reports).to.include({ auth: STRATEGY_KEY, instances: 1, token_requests: 1 });
      expect(health.servers.reports!.token).to.have.property('identity', identityKeyOf(first.env!.REPORTS_TOKEN!));
      expect(JSON.stringify(health)).to.not.include(first.env!.REPORTS_TOKEN);
    });

    it('keys the identity by a short hash of the token, never the token', async () => {
      const token = (await getEnv(gw.base, 'reports')).env!.REPORTS_TOKEN!;
      const me = (await (await fetch(`${gw.base}/reports/whoami`)).json()) as { key: string; subject: string };
      expect(me).to.deep.equal({ key: identityKeyOf(token), subject: 'client credentials' });
      expect(me.key).to.match(/^cc:[0-9a-f]{16}$/);
    });

    it('sends one token request for concurrent first calls, with client_secret_post in the form', async () => {
      const before = long.tokenRequests.length;
      const answers = await Promise.all(Array.from({ length: 5 }, () => getEnv(gw.base, 'reports-post')));
      expect(new Set(answers.map((a) => a.env!.REPORTS_TOKEN)).size).to.equal(1);
      const sent = long.tokenRequests.slice(before);
      expect(sent).to.deep.equal([{ basic: false, form: { grant_type: 'client_credentials', client_id: long.postClient.clientId } }]);
      const info = await long.introspect(answers[0]!.env!.REPORTS_TOKEN!, long.postClient);
      expect(info).to.include({ active: true, client_id: long.postClient.clientId });
    });

    it('replaces the token shortly before it expires: the new token gets a new process', async () => {
      const first = (await getEnv(gw.base, 'short-lived')).env!.REPORTS_TOKEN!;
      expect(short.tokenRequests).to.have.length(1);
      // a 4 s token is replaced after half its lifetime: calls get the first token until then (no token
      // request of their own), then the new one
      const second = await until(async () => {
        const token = (await getEnv(gw.base, 'short-lived')).env!.REPORTS_TOKEN!;
        return token !== first ? token : undefined;
      }, 10_000, 'the token to be replaced', 100);
      expect(second).to.not.equal(first);
      expect(short.tokenRequests).to.have.length(2);
      expect(await short.introspect(second, short.basicClient)).to.include({ active: true });
      const health = (await (await fetch(`${gw.base}/health`)).json()) as { servers: Record<string, { instances: number }> };
      expect(health.servers['short-lived']!.instances).to.equal(2);
    });

    it('keeps the current token while it is valid when its replacement fails', async () => {
      const first = (await getEnv(gw.base, 'flaky')).env!.REPORTS_TOKEN!;
      flaky.mode = 'fail';
      try {
        // due for replacement after 2 s, valid for 4 s: the call that comes after the failed replacement
        const again = await until(async () => {
          const answer = await getEnv(gw.base, 'flaky');
          return flaky.tokenRequests.length >= 2 ? answer : undefined;
        }, 10_000, 'the replacement to be tried', 100);
        expect(again.status).to.equal(200);
        expect(again.env!.REPORTS_TOKEN).to.equal(first);
        expect(flaky.tokenRequests).to.have.length(2);
      } finally {
        flaky.mode = 'ok';
      }
    });

    describe('provider errors are 502 JSON errors saying so', () => {
      const expect502 = async (base: string, name: string, message: RegExp): Promise<void> => {
        const res = await getEnv(base, name);
        expect(res.status, JSON.stringify(res.error)).to.equal(502);
        expect(res.error!.code).to.equal('FMCP_ERR_UPSTREAM');
        expect(res.error!.message).to.match(new RegExp(`^Server "${name}": the gateway could not get an access token from the OAuth provider at http://127\\.0\\.0\\.1:\\d+/token: `));
        expect(res.error!.message).to.match(message);
      };

      it('a refused client names the variables to check, never the secret', async () => {
        await expect502(gw.base, 'wrong-secret', /it refused the gateway's client \(invalid_client: .*\)\. Check REPORTS_CLIENT_ID, WRONG_SECRET and auth\.token_endpoint_auth_method$/);
        const res = await getEnv(gw.base, 'wrong-secret');
        expect(res.error!.message).to.not.include('not-the-secret');
      });

      it('a refused scope points at auth.scopes', async () => {
        await expect502(gw.base, 'wrong-scope', /it refused the scopes \(invalid_scope: .*\)\. Check auth\.scopes$/);
      });

      it('a provider that is down or unreachable', async () => {
        await expect502(gw.base, 'unreachable', /the request failed \(connection refused\)\. Check auth\.token_url and that the provider is up$/);
        flaky.mode = 'fail';
        try {
          await expect502(slowGw.base, 'hanging', /it refused the token request \(temporarily_unavailable: maintenance\)\. Try again later$/);
        } finally {
          flaky.mode = 'ok';
        }
      });

      it('a provider that does not answer, within the plugin\'s timeout', async () => {
        flaky.mode = 'hang';
        try {
          await expect502(slowGw.base, 'hanging', /the request failed \(no answer within 300 ms\)/);
        } finally {
          flaky.mode = 'ok';
        }
      });
    });
  });
});
