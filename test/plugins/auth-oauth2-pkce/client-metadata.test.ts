import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser } from 'playwright-core';
import { challengeS256, createVerifier } from '../../../plugins/auth-oauth2-pkce/index.js';
import { RunningCli, tempTree } from '../../helpers/cli.js';
import { everythingServer } from '../../helpers/paths.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { skipWithout } from '../../helpers/services.js';
import { launchChromium, MemoryOAuthProvider, signInWithBrowser, startRedirectListener, type RedirectListener } from './mcp-login.js';
import { pkceAuth, startPkceGateway } from './pkce-gateway.js';

/**
 * Client ID Metadata Documents over real HTTPS: a document server on loopback with a certificate made
 * here, trusted by a `fluidmcp run` gateway through NODE_EXTRA_CA_CERTS.
 */
describe('auth-oauth2-pkce: Client ID Metadata Documents', function () {
  this.timeout(90_000);
  let oidc: OidcServer;
  let tree: ReturnType<typeof tempTree>;
  let documents: Server;
  let docBase: string;
  let gateway: RunningCli;
  let base: string;
  let browser: Browser;
  let listener: RedirectListener;
  const hung: import('node:http').ServerResponse[] = [];

  before(async function () {
    skipWithout(this, 'openssl');
    tree = tempTree({});
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(tree.root, 'key.pem'), '-out', join(tree.root, 'cert.pem')], { stdio: 'ignore' });
    listener = await startRedirectListener();
    documents = createServer({ key: readFileSync(join(tree.root, 'key.pem')), cert: readFileSync(join(tree.root, 'cert.pem')) }, (req, res) => {
      const url = `${docBase}${req.url}`;
      const doc = (fields: Record<string, unknown>) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(fields));
      switch (req.url) {
        case '/clients/editor.json':
          return doc({ client_id: url, client_name: 'Editor from a metadata document', redirect_uris: [listener.redirectUri], token_endpoint_auth_method: 'none' });
        case '/clients/other-id.json':
          return doc({ client_id: `${docBase}/clients/editor.json`, redirect_uris: [listener.redirectUri] });
        case '/clients/big.json':
          return doc({ client_id: url, redirect_uris: [listener.redirectUri], padding: 'x'.repeat(100_000) });
        case '/clients/moved.json':
          return res.writeHead(302, { location: '/clients/editor.json' }).end();
        case '/clients/secret.json':
          return doc({ client_id: url, redirect_uris: [listener.redirectUri], token_endpoint_auth_method: 'client_secret_basic' });
        case '/clients/slow.json':
          return void hung.push(res);
        default:
          return res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => documents.listen(0, '127.0.0.1', () => r()));
    docBase = `https://localhost:${(documents.address() as AddressInfo).port}`;

    oidc = await startOidcServer({ redirectUris: ['http://localhost/files/auth/callback'] });
    tree.write('config.json', { mcpServers: { files: { command: process.execPath, args: [everythingServer, 'stdio'], auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN' }) } } } });
    gateway = new RunningCli(['run', '--file', 'config.json', '--start-server', '--port', '0'], {
      cwd: tree.root,
      env: { NODE_EXTRA_CA_CERTS: join(tree.root, 'cert.pem'), MAILBOX_CLIENT_ID: oidc.publicClient.clientId, FMCP_TOKEN_KEYS: randomBytes(32).toString('base64url') },
    });
    base = await gateway.ready(30_000);
    browser = await launchChromium();
  });

  after(async () => {
    for (const res of hung) res.destroy();
    await browser?.close();
    await gateway?.stop();
    await listener?.close();
    if (documents) await new Promise<void>((r) => documents.close(() => r()));
    await oidc?.close();
    tree?.remove();
  });

  it('the SDK client connects with a metadata document URL as its client id: consent, provider login, tools, the provider token in the server', async () => {
    const meta = (await (await fetch(`${base}/.well-known/oauth-authorization-server/files`)).json()) as Record<string, unknown>;
    expect(meta.client_id_metadata_document_supported).to.equal(true);

    const url = new URL(`${base}/files/mcp`);
    const provider = new MemoryOAuthProvider(listener.redirectUri);
    provider.clientMetadataUrl = `${docBase}/clients/editor.json`;
    try {
      await new Client({ name: 'cimd-test', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    } catch {
      // the 401 that starts the login
    }
    expect(provider.authorizationUrl?.searchParams.get('client_id')).to.equal(`${docBase}/clients/editor.json`);
    const { consentText, callback } = await signInWithBrowser(browser, provider.authorizationUrl!, listener);
    expect(consentText).to.include('Editor from a metadata document');
    await new StreamableHTTPClientTransport(url, { authProvider: provider }).finishAuth(callback.searchParams.get('code')!);
    const client = new Client({ name: 'cimd-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    try {
      const result = (await client.callTool({ name: 'get-env', arguments: {} })) as { content: { text: string }[] };
      const providerToken = (JSON.parse(result.content[0]!.text) as Record<string, string>).PACKAGE_TOKEN!;
      expect((await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${providerToken}` } })).status).to.equal(200);
      expect(provider.saved!.access_token).to.not.include(providerToken);
    } finally {
      await client.close();
    }
  });

  it('a gateway that does not listen on loopback refuses a document on loopback, checked on the address it would connect to', async () => {
    const gw = await startPkceGateway(oidc, { files: { command: process.execPath, args: [everythingServer, 'stdio'], auth: { type: 'oauth2', flow: 'pkce', ...pkceAuth(oidc) } } }, { kernel: { host: '0.0.0.0' } });
    try {
      const params = new URLSearchParams({ response_type: 'code', client_id: `${docBase}/clients/editor.json`, redirect_uri: listener.redirectUri, code_challenge: challengeS256(createVerifier()), code_challenge_method: 'S256' });
      const res = await fetch(`${gw.base}/files/authorize?${params}`, { redirect: 'manual' });
      const text = await res.text();
      expect(res.status, text).to.equal(400);
      expect(text).to.include('<code>invalid_client</code>');
      expect(text).to.match(/the client metadata document host localhost resolves to a loopback address \((127\.0\.0\.1|::1)\)/);
    } finally {
      await gw.stop();
    }
  });

  for (const [what, clientId, says] of [
    ['not HTTPS', () => 'http://localhost:1/clients/editor.json', 'must be served over HTTPS'],
    ['larger than the cap', () => `${docBase}/clients/big.json`, 'is larger than 65536 bytes'],
    ['whose client_id is not its URL', () => `${docBase}/clients/other-id.json`, 'names another client_id'],
    ['behind a redirect', () => `${docBase}/clients/moved.json`, 'answered a redirect, which is not followed'],
    ['asking for a client secret', () => `${docBase}/clients/secret.json`, 'takes public clients only'],
    ['on a private address', () => 'https://10.255.255.1/clients/editor.json', 'resolves to a private address (10.255.255.1)'],
    ['missing', () => `${docBase}/clients/none.json`, 'answered HTTP 404'],
    ['too slow', () => `${docBase}/clients/slow.json`, 'did not arrive within 5000 ms'],
  ] as const) {
    it(`a document ${what}: an invalid_client error page, never a redirect`, async () => {
      const params = new URLSearchParams({
        response_type: 'code', client_id: clientId(), redirect_uri: listener.redirectUri, code_challenge: challengeS256(createVerifier()), code_challenge_method: 'S256', state: 's',
      });
      const res = await fetch(`${base}/files/authorize?${params}`, { redirect: 'manual' });
      const text = await res.text();
      expect(res.status, text).to.equal(400);
      expect(res.headers.get('location')).to.equal(null);
      expect(text).to.include('<code>invalid_client</code>');
      expect(text).to.include(says);
    });
  }
});
