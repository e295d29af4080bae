import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { stateRedis } from '../../../index.js';
import { challengeS256, createVerifier } from '../../../plugins/auth-oauth2-pkce/index.js';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { skipWithout, startRedis, type RedisServer } from '../../helpers/services.js';
import { getEnv } from '../../examples/plugins/get-env.js';
import { pkceAuth, startPkceGateway } from './pkce-gateway.js';

const REDIRECT = 'http://127.0.0.1:53682/callback';

/** Two gateways with one token key and one Redis: every step of a client's login may land on either. */
describe('auth-oauth2-pkce as an MCP authorization server: two replicas, one key, one Redis', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let oidc: OidcServer;
  let one: TestGateway;
  let two: TestGateway;
  let redirector: Server;
  let redirectTo = '';
  const key = randomBytes(32).toString('base64url');

  before(async function () {
    skipWithout(this, 'redis-server');
    redis = await startRedis();
    oidc = await startOidcServer({ redirectUris: ['http://localhost/files/auth/callback'] });
    const servers = { files: { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } } };
    one = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [key] }, extraPlugins: [stateRedis({ url: redis.url(3) })] });
    // the same public URL, as behind a load balancer: it is the tokens' audience and the provider's redirect URI
    two = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [key] }, extraPlugins: [stateRedis({ url: redis.url(3) })], kernel: { publicUrl: one.kernel.publicUrl() } });
    redirector = createServer((_req, res) => res.writeHead(302, { location: redirectTo }).end());
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', () => r()));
  });

  after(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
    await oidc?.close();
    await redis?.stop();
    if (redirector) await new Promise<void>((r) => redirector.close(() => r()));
  });

  it('registers on one, authorizes on two, consents on one, comes back on two, redeems on one; the token works on both, the code once', async () => {
    const publicUrl = one.kernel.publicUrl();
    const registered = await fetch(`${one.base}/files/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'R', redirect_uris: [REDIRECT] }) });
    const clientId = ((await registered.json()) as { client_id: string }).client_id;
    const verifier = createVerifier();
    const params = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challengeS256(verifier), code_challenge_method: 'S256', state: 'r', resource: `${publicUrl}/files/mcp` });

    const page = await fetch(`${two.base}/files/authorize?${params}`);
    const html = await page.text();
    expect(page.status, html).to.equal(200);
    const request = /name="request" value="([^"]+)"/.exec(html)![1]!;
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
    const allowed = await fetch(`${one.base}/files/authorize`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: new URLSearchParams({ request, csrf, decision: 'allow' }),
    });
    expect(allowed.status).to.equal(302);
    redirectTo = allowed.headers.get('location')!;
    const callback = await loginThroughProvider(`http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`);
    const back = await fetch(callback.replace(publicUrl, two.base), { redirect: 'manual' });
    expect(back.status, await back.text()).to.equal(302);
    const code = new URL(back.headers.get('location')!).searchParams.get('code')!;

    const redeem = () => fetch(`${one.base}/files/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId }),
    });
    const tokens = await redeem();
    const body = (await tokens.json()) as { access_token: string };
    expect(tokens.status, JSON.stringify(body)).to.equal(200);
    const onOne = await getEnv(one.base, 'files', { authorization: `Bearer ${body.access_token}` });
    const onTwo = await getEnv(two.base, 'files', { authorization: `Bearer ${body.access_token}` });
    expect(onOne.status).to.equal(200);
    expect(onTwo.status).to.equal(200);
    expect(onOne.env!.PACKAGE_TOKEN).to.be.a('string').and.equal(onTwo.env!.PACKAGE_TOKEN);

    const replay = await fetch(`${two.base}/files/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId }),
    });
    expect(replay.status).to.equal(400);
    expect(await replay.json()).to.deep.equal({ error: 'invalid_grant', error_description: 'the authorization code was already used' });
  });
  it('keeps a pending login in Redis sealed with the token key, with no verifier in clear, and finishes it on the other replica', async () => {
    const publicUrl = one.kernel.publicUrl();
    const start = await fetch(`${one.base}/files/auth/login`, { redirect: 'manual' });
    expect(start.status).to.equal(302);
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
    const client = new Redis(redis.url(3));
    let stored: string | null;
    try {
      stored = await client.get(`fmcp:pending:${state}`);
    } finally {
      client.disconnect();
    }
    // a JWE (dir, A256GCM): five parts, the second (the encrypted key) empty
    expect(stored).to.match(/^\{"sealed":"[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"\}$/);
    expect(stored).to.not.match(/verifier|files|redirect_uri/);
    const header = JSON.parse(Buffer.from(JSON.parse(stored!).sealed.split('.')[0], 'base64url').toString()) as Record<string, string>;
    expect(header).to.include({ alg: 'dir', enc: 'A256GCM', typ: 'fmcp-pending+jwe' });

    // the browser follows the redirect to the provider (through the redirector, which the helper starts from)
    redirectTo = start.headers.get('location')!;
    const callback = await loginThroughProvider(`http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`);
    const done = await fetch(callback.replace(publicUrl, two.base));
    const body = (await done.json()) as { success?: boolean; package?: string; token_data?: { access_token?: string } };
    expect(done.status, JSON.stringify(body)).to.equal(200);
    expect(body).to.include({ success: true, package: 'files' });
    expect(body.token_data!.access_token).to.be.a('string');
  });

  it('refuses to start with a shared store and no token key: a random key would seal what the other replicas cannot open', async () => {
    const servers = { files: { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc) } } };
    let failure: unknown;
    try {
      const gw = await startPkceGateway(oidc, servers, { extraPlugins: [stateRedis({ url: redis.url(4) })] });
      await gw.stop();
    } catch (err) {
      failure = err;
    }
    expect(String((failure as Error | undefined)?.message)).to.contain(
      '--token-key / FMCP_TOKEN_KEYS: not given: a shared pending-state store (--state-store) keeps each login\'s PKCE verifier, which the gateway encrypts with its token key first: give every replica the same key with --token-key or FMCP_TOKEN_KEYS (make one with: openssl rand -hex 32)',
    );
  });
});
