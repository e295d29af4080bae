import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { pino } from 'pino';
import { challengeS256, createVerifier, TokenSeal } from '../../../plugins/auth-oauth2-pkce/index.js';
import { epochIn } from '../../../plugins/auth-oauth2-pkce/token-seal.js';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { pkceAuth, startPkceGateway } from './pkce-gateway.js';

const REDIRECT = 'http://127.0.0.1:53682/callback';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json?: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const form = (fields: Record<string, string>): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

describe('auth-oauth2-pkce as an MCP authorization server: every bad input gets its RFC error, never a 5xx', function () {
  this.timeout(60_000);
  let oidc: OidcServer;
  let gw: TestGateway;
  let publicUrl: string;
  let redirector: Server;
  let redirectTo = '';
  let clientId: string;
  let otherClientId: string;
  let notesClientId: string;
  const answers: number[] = [];
  const tokenKey = randomBytes(32).toString('base64url');
  const logLines: string[] = [];
  const outcomes: string[] = [];
  /** every code, token, verifier and client id the tests saw: none may reach the log */
  const secrets = new Set<string>();

  const track = async (url: string, init?: RequestInit): Promise<Answer> => {
    const a = await call(url, init);
    answers.push(a.status);
    return a;
  };

  before(async () => {
    // provider tokens live 3 s: the refresh test waits for the sealed token to die with its provider token
    oidc = await startOidcServer({ redirectUris: ['http://localhost/files/auth/callback', 'http://localhost/notes/auth/callback'], accessTokenTtl: 3 });
    const entry = () => ({ ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } });
    gw = await startPkceGateway(oidc, { files: entry(), notes: entry() }, { plugin: { tokenKeys: [tokenKey] }, kernel: { logger: pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) }) } });
    publicUrl = gw.kernel.publicUrl();
    gw.kernel.events.on('login.outcome', (data) => outcomes.push(data.outcome));
    // sends the test's HTTP "browser" to the provider URL the consent step answered, so its cookies are kept from the start
    redirector = createServer((_req, res) => res.writeHead(302, { location: redirectTo }).end());
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', () => r()));
    const register = async (name: string, body: unknown): Promise<string> => {
      const a = await call(`${gw.base}/${name}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(a.status, a.text).to.equal(201);
      return String(a.json!.client_id);
    };
    clientId = await register('files', { client_name: '<script>alert("x")</script> Editor', redirect_uris: [REDIRECT] });
    otherClientId = await register('files', { client_name: 'Other', redirect_uris: [REDIRECT] });
    notesClientId = await register('notes', { client_name: 'Notes client', redirect_uris: [REDIRECT] });
  });

  after(async () => {
    expect(answers.filter((s) => s >= 500), 'no 5xx').to.deep.equal([]);
    expect(logLines.length).to.be.greaterThan(10);
    for (const secret of [...secrets, tokenKey, clientId]) {
      expect(logLines.filter((line) => line.includes(secret)), 'a secret in the log').to.deep.equal([]);
    }
    await gw?.stop();
    await oidc?.close();
    await new Promise<void>((r) => redirector?.close(() => r()));
  });

  const authorizeUrl = (params: Record<string, string>): string => `${gw.base}/files/authorize?${new URLSearchParams(params)}`;
  const goodParams = (challenge: string, extra: Record<string, string> = {}): Record<string, string> => ({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'st-1',
    resource: `${publicUrl}/files/mcp`,
    ...extra,
  });

  /** The consent page's hidden fields and its CSRF cookie. */
  async function consentPage(params: Record<string, string>): Promise<{ page: Answer; request: string; csrf: string; cookie: string }> {
    const page = await track(authorizeUrl(params));
    expect(page.status, page.text).to.equal(200);
    const request = /name="request" value="([^"]+)"/.exec(page.text)![1]!;
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
    return { page, request, csrf, cookie };
  }

  /** A one-use code, obtained as a browser would: consent, provider login, the gateway's callback. */
  async function getCode(verifier: string): Promise<string> {
    const { request, csrf, cookie } = await consentPage(goodParams(challengeS256(verifier)));
    const allowed = await track(`${gw.base}/files/authorize`, { ...form({ request, csrf, decision: 'allow' }), headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
    expect(allowed.status, allowed.text).to.equal(302);
    redirectTo = allowed.headers.get('location')!;
    expect(redirectTo.startsWith(oidc.authorizationUrl)).to.equal(true);
    const callback = await loginThroughProvider(`http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`);
    expect(callback.startsWith(`${publicUrl}/files/auth/callback?`), callback).to.equal(true);
    const back = await track(callback.replace(publicUrl, gw.base));
    expect(back.status, back.text).to.equal(302);
    const location = new URL(back.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).to.equal(REDIRECT);
    expect(location.searchParams.get('state')).to.equal('st-1');
    expect(location.searchParams.get('iss')).to.equal(`${publicUrl}/files`);
    const code = location.searchParams.get('code')!;
    secrets.add(code);
    return code;
  }

  const exchange = (fields: Record<string, string>) => track(`${gw.base}/files/token`, form({ grant_type: 'authorization_code', client_id: clientId, redirect_uri: REDIRECT, ...fields }));

  describe('registration (RFC 7591)', () => {
    it('answers a public client whose id is its sealed metadata', async () => {
      const a = await track(`${gw.base}/files/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT], client_name: 'X' }) });
      expect(a.status).to.equal(201);
      expect(a.headers.get('cache-control')).to.equal('no-store');
      const { client_id: id, client_id_issued_at: issued, ...rest } = a.json!;
      expect(String(id).split('.')).to.have.length(5);
      expect(issued).to.be.a('number');
      expect(rest).to.deep.equal({
        client_name: 'X',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
    });

    for (const [what, body, error] of [
      ['a body that is not JSON', '{"redirect_uris":', 'invalid_client_metadata'],
      ['no redirect_uris', '{"client_name":"x"}', 'invalid_redirect_uri'],
      ['an http redirect URI off loopback', '{"redirect_uris":["http://evil.example/cb"]}', 'invalid_redirect_uri'],
      ['a javascript: redirect URI', '{"redirect_uris":["javascript:alert(1)"]}', 'invalid_redirect_uri'],
      ['a redirect URI with a fragment', '{"redirect_uris":["https://app.example/cb#x"]}', 'invalid_redirect_uri'],
      ['an implicit grant', `{"redirect_uris":["${REDIRECT}"],"grant_types":["implicit"]}`, 'invalid_client_metadata'],
    ] as const) {
      it(`refuses ${what}: 400 ${error}`, async () => {
        const a = await track(`${gw.base}/files/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        expect(a.status).to.equal(400);
        expect(a.json!.error).to.equal(error);
        expect(a.json!.error_description).to.be.a('string').and.not.equal('');
      });
    }
  });

  describe('authorization endpoint', () => {
    const challenge = challengeS256(createVerifier());

    it('shows the consent page, escaped, framed by nothing, with a CSRF cookie', async () => {
      const { page, cookie } = await consentPage(goodParams(challenge));
      expect(page.headers.get('content-type')).to.equal('text/html; charset=utf-8');
      expect(page.headers.get('content-security-policy')).to.include("frame-ancestors 'none'");
      expect(page.text).to.include('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Editor');
      expect(page.text).to.not.include('<script>');
      expect(page.text).to.include('<strong>127.0.0.1:53682</strong>');
      expect(page.text).to.include('<button type="submit" name="decision" value="allow">Allow</button>');
      expect(page.text).to.include('<button type="submit" name="decision" value="deny">Deny</button>');
      expect(cookie).to.match(/^fmcp_consent_[A-Za-z0-9_-]{8}=[A-Za-z0-9_-]{43}$/);
      expect(page.headers.get('set-cookie')).to.include('HttpOnly').and.include('SameSite=Strict').and.include('Path=/files/authorize');
    });

    for (const [what, params, error] of [
      ['no client_id', { client_id: '' }, 'invalid_client'],
      ['an unknown client', { client_id: 'not-a-client' }, 'invalid_client'],
      ['a redirect_uri the client did not register', { redirect_uri: 'http://127.0.0.1:53682/other' }, 'invalid_request'],
      ['a redirect_uri that differs by a trailing slash', { redirect_uri: `${REDIRECT}/` }, 'invalid_request'],
    ] as const) {
      it(`${what}: an error page, never a redirect`, async () => {
        const p: Record<string, string> = { ...goodParams(challenge), ...params };
        if (p.client_id === '') delete p.client_id;
        const a = await track(authorizeUrl(p));
        expect(a.status).to.equal(400);
        expect(a.headers.get('location')).to.equal(null);
        expect(a.headers.get('content-type')).to.equal('text/html; charset=utf-8');
        expect(a.text).to.include(`<code>${p.client_id === undefined ? 'invalid_request' : error}</code>`);
      });
    }

    it('a client_id or redirect_uri sent twice: an error page, never a redirect (RFC 6749 section 3.1), whichever comes first', async () => {
      for (const [name, second] of [['client_id', otherClientId], ['client_id', clientId], ['redirect_uri', REDIRECT]] as const) {
        const q = new URLSearchParams(goodParams(challenge));
        q.append(name, second);
        const a = await track(`${gw.base}/files/authorize?${q}`);
        expect(a.status, `${name} twice`).to.equal(400);
        expect(a.headers.get('location')).to.equal(null);
        expect(a.headers.get('content-type')).to.equal('text/html; charset=utf-8');
        expect(a.text).to.include('<code>invalid_request</code>').and.include(`the request includes ${name} more than once: send each parameter once (RFC 6749 section 3.1)`);
      }
    });

    it('any other parameter sent twice: redirected back with invalid_request, the state and iss; two resources stay invalid_target', async () => {
      for (const [name, second] of [['code_challenge', challenge], ['response_type', 'code'], ['state', 'st-2']] as const) {
        const q = new URLSearchParams(goodParams(challenge));
        q.append(name, second);
        const a = await track(`${gw.base}/files/authorize?${q}`);
        expect(a.status, `${name} twice`).to.equal(302);
        const location = new URL(a.headers.get('location')!);
        expect(`${location.origin}${location.pathname}`).to.equal(REDIRECT);
        expect(location.searchParams.get('error')).to.equal('invalid_request');
        expect(location.searchParams.get('error_description')).to.equal(`the request includes ${name} more than once: send each parameter once (RFC 6749 section 3.1)`);
        expect(location.searchParams.get('state')).to.equal('st-1');
        expect(location.searchParams.get('iss')).to.equal(`${publicUrl}/files`);
      }
      const q = new URLSearchParams(goodParams(challenge));
      q.append('resource', 'https://other.example/mcp');
      const two = await track(`${gw.base}/files/authorize?${q}`);
      expect(new URL(two.headers.get('location')!).searchParams.get('error')).to.equal('invalid_target');
    });

    it('a client registered with another package is unknown here', async () => {
      const a = await track(authorizeUrl({ ...goodParams(challenge), client_id: notesClientId }));
      expect(a.status).to.equal(400);
      expect(a.text).to.include('<code>invalid_client</code>');
    });

    for (const [what, params, error] of [
      ['no PKCE challenge', { code_challenge: '' }, 'invalid_request'],
      ['a plain PKCE challenge', { code_challenge_method: 'plain' }, 'invalid_request'],
      ['a challenge that is not an S256 value', { code_challenge: 'short' }, 'invalid_request'],
      ['another resource', { resource: 'https://other.example/mcp' }, 'invalid_target'],
      ['the implicit flow', { response_type: 'token' }, 'unsupported_response_type'],
    ] as const) {
      it(`${what}: redirected back with ${error}, the state and iss`, async () => {
        const p: Record<string, string> = { ...goodParams(challenge), ...params };
        if (p.code_challenge === '') delete p.code_challenge;
        const a = await track(authorizeUrl(p));
        expect(a.status).to.equal(302);
        const location = new URL(a.headers.get('location')!);
        expect(`${location.origin}${location.pathname}`).to.equal(REDIRECT);
        expect(location.searchParams.get('error')).to.equal(error);
        expect(location.searchParams.get('state')).to.equal('st-1');
        expect(location.searchParams.get('iss')).to.equal(`${publicUrl}/files`);
      });
    }

    it('a consent form is answered once: after Deny, the same form with Allow is refused and goes nowhere', async () => {
      const { request, csrf, cookie } = await consentPage(goodParams(challenge));
      const post = (decision: string) => track(`${gw.base}/files/authorize`, { ...form({ request, csrf, decision }), headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
      const denied = await post('deny');
      expect(denied.status).to.equal(302);
      expect(new URL(denied.headers.get('location')!).searchParams.get('error')).to.equal('access_denied');
      for (const decision of ['allow', 'allow']) {
        const again = await post(decision);
        expect(again.status).to.equal(400);
        expect(again.headers.get('location')).to.equal(null);
        expect(again.text).to.include('this consent form was already answered');
      }
    });

    it('a consent form without its cookie is refused (CSRF), and an altered one too', async () => {
      const { request, csrf, cookie } = await consentPage(goodParams(challenge));
      const noCookie = await track(`${gw.base}/files/authorize`, form({ request, csrf, decision: 'allow' }));
      expect(noCookie.status).to.equal(403);
      expect(noCookie.headers.get('location')).to.equal(null);
      const altered = await track(`${gw.base}/files/authorize`, { ...form({ request: request.slice(0, -2) + (request.endsWith('AA') ? 'BB' : 'AA'), csrf, decision: 'allow' }), headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
      expect(altered.status).to.equal(400);
      expect(altered.text).to.include('the consent form is not one this gateway made');
    });
  });

  describe('token endpoint', () => {
    it('the sealed token dies with the provider token; the refresh token brings a working one', async () => {
      const verifier = createVerifier();
      const before = outcomes.length;
      const code = await getCode(verifier);
      expect(outcomes.slice(before)).to.deep.equal(['success']);
      const tokens = await exchange({ code, code_verifier: verifier });
      expect(tokens.status, tokens.text).to.equal(200);
      expect(tokens.json!.expires_in).to.be.within(1, 3);
      const access = String(tokens.json!.access_token);
      const refresh = String(tokens.json!.refresh_token);
      secrets.add(access).add(refresh);
      const mcp = (token: string) => track(`${gw.base}/files/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      });
      expect((await mcp(access)).status).to.equal(200);
      let last: Answer | undefined;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        last = await mcp(access);
        if (last.status !== 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(last!.status, last!.text).to.equal(401);
      expect((last!.json!.error as { message: string }).message).to.include('has expired');
      const renewed = await track(`${gw.base}/files/token`, form({ grant_type: 'refresh_token', refresh_token: refresh, client_id: clientId }));
      expect(renewed.status, renewed.text).to.equal(200);
      secrets.add(String(renewed.json!.access_token));
      expect((await mcp(String(renewed.json!.access_token))).status).to.equal(200);
      const otherClient = await track(`${gw.base}/files/token`, form({ grant_type: 'refresh_token', refresh_token: refresh, client_id: otherClientId }));
      expect(otherClient.json).to.deep.equal({ error: 'invalid_grant', error_description: 'the refresh token was issued to another client' });
    });

    it('a wrong verifier is invalid_grant, and the code is gone after it', async () => {
      const verifier = createVerifier();
      const code = await getCode(verifier);
      const wrong = await exchange({ code, code_verifier: createVerifier() });
      expect(wrong.status).to.equal(400);
      expect(wrong.json).to.deep.equal({ error: 'invalid_grant', error_description: 'the code_verifier does not match the code_challenge' });
      const late = await exchange({ code, code_verifier: verifier });
      expect(late.json).to.deep.equal({ error: 'invalid_grant', error_description: 'the authorization code was already used' });
    });

    it('checks client, resource and verifier presence before using the code; a replayed code is invalid_grant', async () => {
      const verifier = createVerifier();
      const code = await getCode(verifier);
      const otherClient = await exchange({ code, code_verifier: verifier, client_id: otherClientId });
      expect(otherClient.json).to.deep.equal({ error: 'invalid_grant', error_description: 'the authorization code was issued to another client' });
      const unknown = await exchange({ code, code_verifier: verifier, client_id: 'nobody' });
      expect(unknown.status).to.equal(401);
      expect(unknown.json!.error).to.equal('invalid_client');
      const target = await exchange({ code, code_verifier: verifier, resource: `${publicUrl}/notes/mcp` });
      expect(target.json!.error).to.equal('invalid_target');
      const noVerifier = await exchange({ code });
      expect(noVerifier.json).to.deep.equal({ error: 'invalid_request', error_description: 'PKCE is required: the request has no code_verifier' });

      const good = await exchange({ code, code_verifier: verifier, resource: `${publicUrl}/files/mcp` });
      expect(good.status, good.text).to.equal(200);
      secrets.add(String(good.json!.access_token)).add(String(good.json!.refresh_token)).add(verifier);
      expect(good.headers.get('cache-control')).to.equal('no-store');
      expect(Object.keys(good.json!).sort()).to.deep.equal(['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
      const replay = await exchange({ code, code_verifier: verifier });
      expect(replay.status).to.equal(400);
      expect(replay.json).to.deep.equal({ error: 'invalid_grant', error_description: 'the authorization code was already used' });
    });

    it('a redirect_uri that differs from the authorization request is invalid_grant', async () => {
      const verifier = createVerifier();
      const code = await getCode(verifier);
      const a = await exchange({ code, code_verifier: verifier, redirect_uri: 'http://127.0.0.1:53682/elsewhere' });
      expect(a.json).to.deep.equal({ error: 'invalid_grant', error_description: 'redirect_uri does not match the one of the authorization request' });
    });

    for (const [what, fields, status, error] of [
      ['an unsupported grant', { grant_type: 'password', client_id: 'x' }, 400, 'unsupported_grant_type'],
      ['no grant_type', { client_id: 'x' }, 400, 'invalid_request'],
      ['a code that is not ours', { grant_type: 'authorization_code', code: 'abc', code_verifier: 'v'.repeat(43) }, 400, 'invalid_grant'],
      ['a refresh token that is not ours', { grant_type: 'refresh_token', refresh_token: 'abc' }, 400, 'invalid_grant'],
    ] as const) {
      it(`${what}: ${status} ${error}`, async () => {
        const body: Record<string, string> = Object.assign({ client_id: clientId }, fields as Record<string, string>);
        const a = await track(`${gw.base}/files/token`, form(body));
        expect(a.status).to.equal(status);
        expect(a.json!.error).to.equal(error);
      });
    }

    it('an expired access token of ours is 401 invalid_token, and starts no server', async () => {
      const expired = await new TokenSeal([tokenKey]).seal('access', { aud: `${publicUrl}/files/mcp`, exp: epochIn(-5), ptk: 'provider-token', cid: clientId });
      const a = await track(`${gw.base}/files/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${expired}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
      });
      expect(a.status).to.equal(401);
      expect(a.headers.get('www-authenticate')).to.include('error="invalid_token"').and.include('resource_metadata=');
      expect((a.json!.error as { message: string }).message).to.include('The access token sent to "files" has expired');
    });

    it('a refresh token, a code or a client id of ours sent as a Bearer token: 401 saying what it is and what to do', async () => {
      const seal = new TokenSeal([tokenKey]);
      const refresh = await seal.seal('refresh', { aud: `${publicUrl}/files/mcp`, exp: epochIn(600), prt: 'provider-refresh', cid: clientId });
      const code = await seal.seal('code', { aud: `${publicUrl}/files`, exp: epochIn(60), jti: 'x' });
      for (const [token, says] of [
        [refresh, `is a refresh token, not an access token (exchange it at the token endpoint ${publicUrl}/files/token with grant_type=refresh_token)`],
        [code, `is an authorization code, not an access token (redeem it at the token endpoint ${publicUrl}/files/token with grant_type=authorization_code)`],
        [clientId, `is a client id (from ${publicUrl}/files/register), not an access token (sign in with it at ${publicUrl}/files/authorize)`],
      ] as const) {
        const a = await track(`${gw.base}/files/mcp`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        });
        expect(a.status, says).to.equal(401);
        expect(a.headers.get('www-authenticate'), says).to.include('error="invalid_token"');
        const message = (a.json!.error as { message: string }).message;
        expect(message).to.equal(`The Bearer token sent to "files" ${says}: sign in at ${publicUrl}/files/auth/login, then send the access_token as "Authorization: Bearer <access_token>"`);
        expect(message).to.not.include('provider rejected');
      }
    });

    it('a JSON body is invalid_request', async () => {
      const a = await track(`${gw.base}/files/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"grant_type":"authorization_code"}' });
      expect(a.status).to.equal(400);
      expect(a.json!.error).to.equal('invalid_request');
    });
  });
});
