import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Client, StreamableHTTPClientTransport, UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/client';
import type { Browser } from 'playwright-core';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { launchChromium, MemoryOAuthProvider, signInWithBrowser, startRedirectListener, type RedirectListener } from './mcp-login.js';
import { pkceAuth, startPkceGateway } from './pkce-gateway.js';

describe('auth-oauth2-pkce as an MCP authorization server: the v2 SDK client (@modelcontextprotocol/client)', function () {
  this.timeout(90_000);
  let oidc: OidcServer;
  let gw: TestGateway;
  let browser: Browser;
  let listener: RedirectListener;

  before(async () => {
    oidc = await startOidcServer({ redirectUris: ['http://localhost/files/auth/callback'] });
    const servers = { files: { ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } } };
    gw = await startPkceGateway(oidc, servers, { plugin: { tokenKeys: [randomBytes(32).toString('base64url')] } });
    browser = await launchChromium();
    listener = await startRedirectListener();
  });

  after(async () => {
    await browser?.close();
    await listener?.close();
    await gw?.stop();
    await oidc?.close();
  });

  it('registers, signs in through the consent page and the provider, checks iss, and calls tools with the sealed token', async () => {
    const url = new URL(`${gw.kernel.publicUrl()}/files/mcp`);
    const memory = new MemoryOAuthProvider(listener.redirectUri, 'FluidMCP v2 client');
    const provider = memory as unknown as OAuthClientProvider;
    let refused: unknown;
    try {
      await new Client({ name: 'v2-test', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    } catch (err) {
      refused = err;
    }
    expect(refused).to.be.instanceOf(UnauthorizedError);
    const { consentText, callback } = await signInWithBrowser(browser, memory.authorizationUrl!, listener);
    expect(consentText).to.include('FluidMCP v2 client');
    // the v2 client checks the RFC 9207 iss of the answer against the issuer it discovered
    await new StreamableHTTPClientTransport(url, { authProvider: provider }).finishAuth(callback.searchParams);
    const client = new Client({ name: 'v2-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    try {
      const result = (await client.callTool({ name: 'get-env', arguments: {} })) as { content: { text: string }[] };
      const providerToken = (JSON.parse(result.content[0]!.text) as Record<string, string>).PACKAGE_TOKEN!;
      expect((await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${providerToken}` } })).status).to.equal(200);
      expect(memory.saved!.access_token.split('.')).to.have.length(5);
      expect(memory.saved!.access_token).to.not.include(providerToken);
    } finally {
      await client.close();
    }
  });
});
