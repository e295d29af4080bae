import { expect } from 'chai';
import { PENDING_STATE } from '../../../index.js';
import { challengeS256, SUCCESS_MESSAGE, VERIFIER_PATTERN } from '../../../plugins/auth-oauth2-pkce/index.js';
import type { TestGateway } from '../../helpers/gateway.js';
import { request } from '../../helpers/request.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import {
  closedPort,
  errorCode,
  errorMessage,
  get,
  loginUrl,
  mailboxEntry,
  pkceAuth,
  RecordingStore,
  redirectUris,
  silentServer,
  startPkceGateway,
  storePlugin,
} from './pkce-gateway.js';

describe('auth-oauth2-pkce: login and callback against oidc-provider', function () {
  let oidc: OidcServer;
  let gw: TestGateway;
  let store: RecordingStore;
  const started: TestGateway[] = [];

  before(async () => {
    oidc = await startOidcServer({ redirectUris: redirectUris() });
    store = new RecordingStore();
    gw = await startPkceGateway(
      oidc,
      {
        mailbox: mailboxEntry(pkceAuth(oidc, { authorization_url: `${oidc.authorizationUrl}?tenant=demo`, extra_params: { prompt: 'consent', audience: 'mailbox-api' } })),
        'mailbox-post': mailboxEntry(pkceAuth(oidc, { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET' })),
        'mailbox-basic': mailboxEntry(
          pkceAuth(oidc, { client_id_env: 'BASIC_CLIENT_ID', client_secret_env: 'BASIC_CLIENT_SECRET', token_endpoint_auth_method: 'client_secret_basic' }),
        ),
        'mailbox-down': mailboxEntry(pkceAuth(oidc, { token_url: `http://127.0.0.1:${await closedPort()}/token` })),
        open: mailboxEntry(),
      },
      { extraPlugins: [storePlugin(store)] },
    );
  });

  after(async () => {
    await Promise.all([gw?.stop(), ...started.map((g) => g.stop())]);
    await oidc?.close();
  });

  /** Starts a login at the gateway and returns the state it put in the provider redirect. */
  async function startLogin(g: TestGateway, name: string): Promise<string> {
    const res = await get(g.url(`/${name}/auth/login`));
    expect(res.status, res.text).to.equal(302);
    return new URL(res.headers.get('location')!).searchParams.get('state')!;
  }

  it('redirects to the provider with every PKCE parameter, the S256 challenge of a fresh verifier, and the extra params', async () => {
    const before = store.puts.length;
    const res = await get(gw.url('/mailbox/auth/login'));
    expect(res.status).to.equal(302);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).to.equal(oidc.authorizationUrl);
    const q = location.searchParams;
    expect(q.get('tenant')).to.equal('demo');
    expect(q.get('response_type')).to.equal('code');
    expect(q.get('client_id')).to.equal(oidc.publicClient.clientId);
    expect(q.get('redirect_uri')).to.equal(`http://localhost:${gw.kernel.address().port}/mailbox/auth/callback`);
    expect(q.get('scope')).to.equal('openid profile mail.read');
    expect(q.get('code_challenge_method')).to.equal('S256');
    expect(q.get('prompt')).to.equal('consent');
    expect(q.get('audience')).to.equal('mailbox-api');
    expect(q.get('state')).to.match(/^[A-Za-z0-9_-]{43}$/);

    expect(store.puts.length).to.equal(before + 1);
    const pending = store.puts.at(-1)!;
    expect(pending.key).to.equal(q.get('state'));
    expect(pending.value.package).to.equal('mailbox');
    const verifier = String(pending.value.verifier);
    expect(verifier).to.match(VERIFIER_PATTERN);
    expect(q.get('code_challenge')).to.equal(challengeS256(verifier));
    expect(location.href).to.not.contain(verifier);
  });

  it("builds redirect_uri from the configured public URL, never from the request's Host", async () => {
    const local = await request(gw.kernel.address().port, { path: '/mailbox/auth/login', headers: { host: '127.0.0.1:1' } });
    expect(local.status).to.equal(302);
    expect(new URL(String(local.headers.location)).searchParams.get('redirect_uri')).to.equal(`http://localhost:${gw.kernel.address().port}/mailbox/auth/callback`);

    const g = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { kernel: { publicUrl: 'https://mcp.example.com/', allowedHosts: ['*'] } });
    started.push(g);
    const res = await request(g.kernel.address().port, { path: '/mailbox/auth/login', headers: { host: 'evil.example' } });
    expect(res.status).to.equal(302);
    expect(new URL(String(res.headers.location)).searchParams.get('redirect_uri')).to.equal('https://mcp.example.com/mailbox/auth/callback');
  });

  it("completes the flow with the public client and answers exactly the seed's JSON, no-store", async () => {
    const callback = await loginThroughProvider(gw.url('/mailbox/auth/login'));
    const cb = new URL(callback);
    expect(cb.pathname).to.equal('/mailbox/auth/callback');
    expect(cb.searchParams.get('code')).to.be.a('string');
    const res = await get(callback);
    expect(res.status, res.text).to.equal(200);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(Object.keys(res.body)).to.deep.equal(['success', 'package', 'token_data', 'message']);
    expect(res.body.success).to.equal(true);
    expect(res.body.package).to.equal('mailbox');
    expect(res.body.message).to.equal(SUCCESS_MESSAGE);
    const tokenData = res.body.token_data as Record<string, unknown>;
    expect(tokenData.access_token).to.be.a('string').with.length.above(20);
    expect(tokenData.refresh_token).to.be.a('string');
    expect(tokenData.token_type).to.equal('Bearer');
    expect(tokenData.expires_in).to.equal(3600);
    expect(String(tokenData.scope).split(' ')).to.include.members(['openid', 'profile', 'mail.read']);

    // the provider's token works at the provider
    const me = await get(oidc.userinfoUrl, { authorization: `Bearer ${String(tokenData.access_token)}` });
    expect(me.status).to.equal(200);
    expect(me.body.sub).to.equal('alice');
  });

  it('completes the flow with a confidential client, the secret sent in the body (client_secret_post)', async () => {
    const res = await get(await loginThroughProvider(gw.url('/mailbox-post/auth/login'), { login: 'bob' }));
    expect(res.status, res.text).to.equal(200);
    expect(res.body.package).to.equal('mailbox-post');
    expect((res.body.token_data as Record<string, unknown>).access_token).to.be.a('string');
  });

  it('completes the flow with a confidential client, the secret sent as HTTP Basic (client_secret_basic)', async () => {
    const res = await get(await loginThroughProvider(gw.url('/mailbox-basic/auth/login'), { login: 'carol' }));
    expect(res.status, res.text).to.equal(200);
    expect(res.body.package).to.equal('mailbox-basic');
  });

  it('refuses a replayed callback: the state is used once', async () => {
    const callback = await loginThroughProvider(gw.url('/mailbox/auth/login'));
    expect((await get(callback)).status).to.equal(200);
    const again = await get(callback);
    expect(again.status).to.equal(400);
    expect(again.headers.get('cache-control')).to.equal('no-store');
    expect(errorMessage(again.body)).to.match(/^Invalid or expired state parameter/);
    expect(errorMessage(again.body)).to.contain(`${loginUrl(gw, 'mailbox')} to start a new login`);
  });

  it('reports a replayed code with a new state as the provider refusing it (invalid_grant)', async () => {
    const callback = new URL(await loginThroughProvider(gw.url('/mailbox/auth/login')));
    expect((await get(callback.href)).status).to.equal(200);
    callback.searchParams.set('state', await startLogin(gw, 'mailbox'));
    const res = await get(callback.href);
    expect(res.status).to.equal(400);
    expect(errorMessage(res.body)).to.contain('The provider refused the token request for "mailbox" (invalid_grant');
    expect(errorMessage(res.body)).to.contain('to start a new login');
  });

  it('refuses an unknown state before looking at anything else', async () => {
    const res = await get(gw.url('/mailbox/auth/callback?state=made-up&code=abc&error=access_denied'));
    expect(res.status).to.equal(400);
    expect(errorCode(res.body)).to.equal('FMCP_ERR_BAD_REQUEST');
    expect(errorMessage(res.body)).to.match(/^Invalid or expired state parameter/);
    expect((await get(gw.url('/mailbox/auth/callback'))).body).to.satisfy((b: Record<string, unknown>) => errorMessage(b).startsWith('Invalid or expired state parameter'));
  });

  it('refuses a state issued for another package, and the state is then gone for its own package too', async () => {
    const callback = new URL(await loginThroughProvider(gw.url('/mailbox/auth/login')));
    const elsewhere = new URL(callback.href);
    elsewhere.pathname = '/mailbox-post/auth/callback';
    const res = await get(elsewhere.href);
    expect(res.status).to.equal(400);
    expect(errorMessage(res.body)).to.match(/^Invalid or expired state parameter/);
    expect((await get(callback.href)).status).to.equal(400);
  });

  it("reports the provider's access_denied as JSON with the provider's words", async () => {
    const callback = await loginThroughProvider(gw.url('/mailbox/auth/login'), { deny: true });
    expect(new URL(callback).searchParams.get('error')).to.equal('access_denied');
    const res = await get(callback);
    expect(res.status).to.equal(400);
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(errorMessage(res.body)).to.equal(
      `The provider did not sign you in to "mailbox": access_denied (End-User aborted interaction). Go to ${loginUrl(gw, 'mailbox')} to try again`,
    );
    // the state went with it
    expect((await get(callback)).status).to.equal(400);
  });

  it("keeps a provider's hostile error text inert: JSON only, control characters removed, bounded", async () => {
    const state = await startLogin(gw, 'mailbox');
    const description = `<script>alert(1)</script>\r\nSet-Cookie: x=1 ${'a'.repeat(1000)}`;
    const res = await get(gw.url(`/mailbox/auth/callback?state=${state}&error=${encodeURIComponent('server_error"<b>')}&error_description=${encodeURIComponent(description)}`));
    expect(res.status).to.equal(400);
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(res.headers.get('set-cookie')).to.equal(null);
    const message = errorMessage(res.body);
    expect(message).to.contain('server_error"<b> (<script>alert(1)</script> Set-Cookie: x=1 aaa');
    expect(message).to.not.match(/[\r\n]/);
    expect(message.length).to.be.below(600);
  });

  it('answers a callback without a code clearly', async () => {
    const res = await get(gw.url(`/mailbox/auth/callback?state=${await startLogin(gw, 'mailbox')}`));
    expect(res.status).to.equal(400);
    expect(errorMessage(res.body)).to.equal(
      `The callback for "mailbox" has no "code" parameter: open ${loginUrl(gw, 'mailbox')} and let the provider redirect back here`,
    );
  });

  it('says so when the token endpoint is down', async () => {
    const res = await get(gw.url(`/mailbox-down/auth/callback?state=${await startLogin(gw, 'mailbox-down')}&code=abc`));
    expect(res.status).to.equal(502);
    expect(errorCode(res.body)).to.equal('FMCP_ERR_UPSTREAM');
    expect(errorMessage(res.body)).to.match(/^Server "mailbox-down": cannot reach the token endpoint http:\/\/127\.0\.0\.1:\d+\/token of "mailbox-down" \(connection refused\)/);
  });

  it('says so when the token endpoint does not answer in time', async () => {
    const silent = await silentServer();
    try {
      const g = await startPkceGateway(oidc, { 'mailbox-slow': mailboxEntry(pkceAuth(oidc, { token_url: silent.url })) }, { plugin: { providerTimeoutMs: 200 } });
      started.push(g);
      const res = await get(g.url(`/mailbox-slow/auth/callback?state=${await startLogin(g, 'mailbox-slow')}&code=abc`));
      expect(res.status).to.equal(504);
      expect(errorCode(res.body)).to.equal('FMCP_ERR_TIMEOUT');
      expect(errorMessage(res.body)).to.equal(`The request to the token endpoint ${silent.url} of "mailbox-slow" did not finish within 200 ms`);
    } finally {
      await silent.close();
    }
  });

  it('expires pending logins', async () => {
    const g = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { plugin: { pendingLoginTtlMs: 1 } });
    started.push(g);
    const state = await startLogin(g, 'mailbox');
    await new Promise((r) => setTimeout(r, 20));
    const res = await get(g.url(`/mailbox/auth/callback?state=${state}&code=abc`));
    expect(res.status).to.equal(400);
    expect(errorMessage(res.body)).to.match(/^Invalid or expired state parameter/);
  });

  it('bounds pending logins: a flood drops the oldest first and memory stays bounded', async () => {
    const g = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { plugin: { maxPendingLogins: 5 } });
    started.push(g);
    const states: string[] = [];
    for (let i = 0; i < 50; i++) states.push(await startLogin(g, 'mailbox'));
    expect(await g.kernel.resolve(PENDING_STATE).size()).to.equal(5);
    const oldest = await get(g.url(`/mailbox/auth/callback?state=${states[0]}&code=abc`));
    expect(errorMessage(oldest.body)).to.match(/^Invalid or expired state parameter/);
    // the newest is still pending: it gets as far as the provider, which refuses the made-up code
    const newest = await get(g.url(`/mailbox/auth/callback?state=${states[49]}&code=abc`));
    expect(errorMessage(newest.body)).to.contain('(invalid_grant');
  });

  it('refreshes tokens statelessly, with the same JSON shape', async () => {
    const login = await get(await loginThroughProvider(gw.url('/mailbox-post/auth/login')));
    const first = login.body.token_data as Record<string, string>;
    const res = await fetch(gw.url('/mailbox-post/auth/refresh'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: first.refresh_token }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status, JSON.stringify(body)).to.equal(200);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(Object.keys(body)).to.deep.equal(['success', 'package', 'token_data', 'message']);
    expect(body.package).to.equal('mailbox-post');
    const fresh = body.token_data as Record<string, string>;
    expect(fresh.access_token).to.be.a('string').and.not.equal(first.access_token);

    const form = await fetch(gw.url('/mailbox-post/auth/refresh'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ refresh_token: fresh.refresh_token ?? first.refresh_token! }).toString(),
    });
    expect(form.status).to.equal(200);

    const missing = await fetch(gw.url('/mailbox-post/auth/refresh'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(missing.status).to.equal(400);
    expect(errorMessage((await missing.json()) as Record<string, unknown>)).to.contain('send {"refresh_token": "<refresh_token>"}');

    const bogus = await fetch(gw.url('/mailbox-post/auth/refresh'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"refresh_token":"nope"}' });
    expect(bogus.status).to.equal(400);
    expect(errorMessage((await bogus.json()) as Record<string, unknown>)).to.contain('(invalid_grant');
  });

  it("answers the seed's \"Package does not require OAuth authentication\" for a package without an auth block", async () => {
    for (const path of ['/open/auth/login', '/open/auth/callback?state=x&code=y']) {
      const res = await get(gw.url(path));
      expect(res.status).to.equal(400);
      expect(errorMessage(res.body)).to.match(/^Package does not require OAuth authentication: "open" has no auth block/);
    }
    const refresh = await fetch(gw.url('/open/auth/refresh'), { method: 'POST', body: '{"refresh_token":"x"}' });
    expect(refresh.status).to.equal(400);
  });

  it('answers 404 for a package the gateway does not serve', async () => {
    const res = await get(gw.url('/nope/auth/login'));
    expect(res.status).to.equal(404);
    expect(errorCode(res.body)).to.equal('FMCP_ERR_UNKNOWN_SERVER');
    expect(errorMessage(res.body)).to.contain('Unknown package "nope": this gateway serves mailbox');
  });

  it('says "client_id not found" naming the variable when client_id_env is not set', async () => {
    const g = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { plugin: { env: {} } });
    started.push(g);
    const res = await get(g.url('/mailbox/auth/login'));
    expect(res.status).to.equal(500);
    expect(errorMessage(res.body)).to.contain(
      'mcpServers.mailbox.auth.client_id_env: client_id not found: the environment variable MAILBOX_CLIENT_ID is not set. Run export MAILBOX_CLIENT_ID="<your client id>" and restart FluidMCP',
    );
  });

  it('lists the login URL in /health', async () => {
    const health = await get(gw.url('/health'));
    const servers = health.body.servers as Record<string, Record<string, unknown>>;
    expect(servers.mailbox!.login).to.equal(loginUrl(gw, 'mailbox'));
    expect(servers.open!.login).to.equal(undefined);
  });
});
