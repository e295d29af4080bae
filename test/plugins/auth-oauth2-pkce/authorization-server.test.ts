import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser } from 'playwright-core';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { getEnv } from '../../examples/plugins/get-env.js';
import { launchChromium, MemoryOAuthProvider, signInWithBrowser, startRedirectListener, type RedirectListener } from './mcp-login.js';
import { pkceAuth, startPkceGateway } from './pkce-gateway.js';

const PACKAGES = ['files', 'notes'];

describe('auth-oauth2-pkce as an MCP authorization server: the SDK client logs in by itself', function () {
  this.timeout(90_000);
  let oidc: OidcServer;
  let gw: TestGateway;
  let browser: Browser;
  let listener: RedirectListener;
  let publicUrl: string;
  const tokenKey = randomBytes(32).toString('base64url');

  before(async () => {
    oidc = await startOidcServer({ redirectUris: PACKAGES.map((p) => `http://localhost/${p}/auth/callback`) });
    const servers = Object.fromEntries(PACKAGES.map((name) => [name, { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } }]));
    gw = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [tokenKey] } });
    publicUrl = gw.kernel.publicUrl();
    browser = await launchChromium();
    listener = await startRedirectListener();
  });

  after(async () => {
    await browser?.close();
    await listener?.close();
    await gw?.stop();
    await oidc?.close();
  });

  /** Connect, get a 401, register, consent, sign in at the provider, finish, connect again: what a real client does. */
  async function logIn(name: string): Promise<{ client: Client; provider: MemoryOAuthProvider; consentText: string; callback: URL }> {
    const url = new URL(`${publicUrl}/${name}/mcp`);
    const provider = new MemoryOAuthProvider(listener.redirectUri);
    const first = new Client({ name: 'as-test', version: '1.0.0' });
    let refused: unknown;
    try {
      await first.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    } catch (err) {
      refused = err;
    }
    expect(refused).to.be.instanceOf(UnauthorizedError);
    expect(provider.authorizationUrl?.href.startsWith(`${publicUrl}/${name}/authorize?`), String(provider.authorizationUrl)).to.equal(true);
    const { consentText, callback } = await signInWithBrowser(browser, provider.authorizationUrl!, listener);
    const code = callback.searchParams.get('code');
    expect(code, callback.href).to.be.a('string');
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await transport.finishAuth(code!);
    const client = new Client({ name: 'as-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    return { client, provider, consentText, callback };
  }

  it('serves Protected Resource Metadata and a resource_metadata challenge on a 401', async () => {
    const res = await fetch(`${gw.base}/files/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
    expect(res.status).to.equal(401);
    expect(res.headers.get('www-authenticate')).to.equal(
      `Bearer realm="files", resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/files/mcp", scope="openid profile mail.read"`,
    );
    const prm = await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/files/mcp`)).json();
    expect(prm).to.deep.equal({
      resource: `${publicUrl}/files/mcp`,
      authorization_servers: [`${publicUrl}/files`],
      scopes_supported: ['openid', 'profile', 'mail.read'],
      bearer_methods_supported: ['header'],
      resource_name: 'files',
    });
  });

  it('serves RFC 8414 metadata at the path-inserted and OpenID paths', async () => {
    const expected = {
      issuer: `${publicUrl}/files`,
      authorization_endpoint: `${publicUrl}/files/authorize`,
      token_endpoint: `${publicUrl}/files/token`,
      registration_endpoint: `${publicUrl}/files/register`,
      scopes_supported: ['openid', 'profile', 'mail.read'],
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['none'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: true,
    };
    for (const path of ['/.well-known/oauth-authorization-server/files', '/.well-known/openid-configuration/files', '/files/.well-known/openid-configuration']) {
      const res = await fetch(gw.base + path);
      expect(res.status, path).to.equal(200);
      expect(await res.json(), path).to.deep.equal(expected);
    }
    expect((await fetch(`${gw.base}/.well-known/oauth-authorization-server/nothing`)).status).to.equal(404);
  });

  it('connects with DCR, the consent page and the provider login; the server gets the provider token, the client only the sealed one', async () => {
    const { client, provider, consentText, callback } = await logIn('files');
    try {
      expect(consentText).to.include('Allow access to files?');
      expect(consentText).to.include('FluidMCP test client');
      expect(consentText).to.include(new URL(listener.redirectUri).host);
      expect(callback.searchParams.get('state')).to.equal(provider.clientState);
      expect(callback.searchParams.get('iss')).to.equal(`${publicUrl}/files`);

      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).to.include('get-env');
      const result = (await client.callTool({ name: 'get-env', arguments: {} })) as { content: { text: string }[] };
      const env = JSON.parse(result.content[0]!.text) as Record<string, string>;
      const providerToken = env.PACKAGE_TOKEN!;
      const sealed = provider.saved!.access_token;
      expect(providerToken).to.be.a('string').and.not.equal('');
      expect(sealed.split('.')).to.have.length(5);
      expect(sealed).to.not.include(providerToken);
      expect(provider.saved!.refresh_token).to.be.a('string').and.not.include(providerToken);

      // the provider's token is real: the provider's userinfo accepts it, and the gateway still takes it directly
      const me = await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${providerToken}` } });
      expect(me.status).to.equal(200);
      expect(((await me.json()) as { sub: string }).sub).to.equal('alice');
      const direct = await getEnv(gw.base, 'files', { authorization: `Bearer ${providerToken}` });
      expect(direct.status).to.equal(200);
      expect(direct.env!.PACKAGE_TOKEN).to.equal(providerToken);

      // audience: the sealed token of "files" is refused by "notes"
      const other = await getEnv(gw.base, 'notes', { authorization: `Bearer ${sealed}` });
      expect(other.status).to.equal(401);
      expect(other.error!.message).to.include('was issued for another package');
      expect(other.headers.get('www-authenticate')).to.include('error="invalid_token"');

      // tampered: one character of the ciphertext changed
      const parts = sealed.split('.');
      parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
      const tampered = await getEnv(gw.base, 'files', { authorization: `Bearer ${parts.join('.')}` });
      expect(tampered.status).to.equal(401);
      expect(tampered.error!.message).to.include('was altered or is not valid');

      // refresh: a new sealed pair from the provider's refresh token, and the new access token works
      const refreshed = await fetch(`${gw.base}/files/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: provider.saved!.refresh_token!, client_id: provider.client!.client_id }),
      });
      const renewed = (await refreshed.json()) as { access_token: string; token_type: string; expires_in: number };
      expect(refreshed.status, JSON.stringify(renewed)).to.equal(200);
      expect(renewed.token_type).to.equal('Bearer');
      expect(renewed.expires_in).to.be.within(3500, 3600);
      const after = await getEnv(gw.base, 'files', { authorization: `Bearer ${renewed.access_token}` });
      expect(after.status).to.equal(200);
      expect(after.env!.PACKAGE_TOKEN).to.not.equal(providerToken);
    } finally {
      await client.close();
    }
  });

  it('a gateway restarted with the same key accepts the old token; one with another key answers 401', async () => {
    const { client, provider } = await logIn('notes');
    await client.close();
    const sealed = provider.saved!.access_token;
    const servers = { notes: { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } } };
    const port = gw.kernel.address().port;
    // same public URL (the audience), other process-level state
    const same = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [randomBytes(32).toString('base64url'), tokenKey] }, kernel: { publicUrl } });
    const other = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [randomBytes(32).toString('base64url')] }, kernel: { publicUrl } });
    try {
      expect(port).to.not.equal(same.kernel.address().port);
      const ok = await getEnv(same.base, 'notes', { authorization: `Bearer ${sealed}` });
      expect(ok.status).to.equal(200);
      expect(ok.env!.PACKAGE_TOKEN).to.be.a('string').and.not.equal(sealed);
      const refused = await getEnv(other.base, 'notes', { authorization: `Bearer ${sealed}` });
      expect(refused.status).to.equal(401);
      expect(refused.error!.message).to.include('was sealed with a key this gateway no longer has');
    } finally {
      await Promise.all([same.stop(), other.stop()]);
    }
  });

  it('"Deny" on the consent page sends access_denied to the client, with its state and iss', async () => {
    const provider = new MemoryOAuthProvider(listener.redirectUri);
    try {
      await new Client({ name: 'as-test', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(new URL(`${publicUrl}/files/mcp`), { authProvider: provider }));
    } catch {
      // the 401 that starts the login
    }
    const { callback } = await signInWithBrowser(browser, provider.authorizationUrl!, listener, { deny: true });
    expect(Object.fromEntries(callback.searchParams)).to.deep.equal({
      error: 'access_denied',
      error_description: 'the user denied access',
      state: provider.clientState,
      iss: `${publicUrl}/files`,
    });
  });
});
