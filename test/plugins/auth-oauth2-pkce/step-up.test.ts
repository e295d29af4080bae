import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport, UnauthorizedError as V2UnauthorizedError, type OAuthClientProvider as V2OAuthClientProvider } from '@modelcontextprotocol/client';
import type { Browser } from 'playwright-core';
import { everythingEntry, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { getEnv } from '../../examples/plugins/get-env.js';
import { launchChromium, MemoryOAuthProvider, signInWithBrowser, startRedirectListener, type RedirectListener } from './mcp-login.js';
import { loginUrl, pkceAuth, redirectUris, startPkceGateway } from './pkce-gateway.js';

const ALL = ['openid', 'profile', 'mail.read'];

/** The two generations of the official SDK's client, as an application drives each. */
interface SdkDriver {
  readonly name: string;
  readonly Unauthorized: new (...args: never[]) => Error;
  /** what the client asks its provider to forget on the way to the step-up */
  readonly invalidates: string[];
  connect(url: URL, provider: MemoryOAuthProvider): Promise<{ getEnv(): Promise<Record<string, string>>; close(): Promise<void> }>;
  finishAuth(url: URL, provider: MemoryOAuthProvider, callback: URL): Promise<void>;
}

const envOf = (result: unknown): Record<string, string> => JSON.parse((result as { content: { text: string }[] }).content[0]!.text) as Record<string, string>;

const SDKS: SdkDriver[] = [
  {
    name: 'v1',
    Unauthorized: UnauthorizedError,
    invalidates: ['tokens'],
    async connect(url, provider) {
      const client = new Client({ name: 'step-up-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
      return { getEnv: async () => envOf(await client.callTool({ name: 'get-env', arguments: {} })), close: () => client.close() };
    },
    finishAuth: (url, provider, callback) => new StreamableHTTPClientTransport(url, { authProvider: provider }).finishAuth(callback.searchParams.get('code')!),
  },
  {
    name: 'v2',
    Unauthorized: V2UnauthorizedError,
    invalidates: [],
    async connect(url, provider) {
      const client = new V2Client({ name: 'step-up-test', version: '1.0.0' });
      await client.connect(new V2Transport(url, { authProvider: provider as unknown as V2OAuthClientProvider }));
      return { getEnv: async () => envOf(await client.callTool({ name: 'get-env', arguments: {} })), close: () => client.close() };
    },
    // the v2 client checks the RFC 9207 iss of the answer against the issuer it discovered
    finishAuth: (url, provider, callback) => new V2Transport(url, { authProvider: provider as unknown as V2OAuthClientProvider }).finishAuth(callback.searchParams),
  },
];

const pkceEntry = (auth: Record<string, unknown>) => ({ ...everythingEntry(), auth: { type: 'oauth2', flow: 'pkce', ...auth } });

describe('auth-oauth2-pkce: 403 insufficient_scope (step-up)', function () {
  this.timeout(90_000);
  let oidc: OidcServer;

  before(async () => {
    oidc = await startOidcServer({ redirectUris: [...redirectUris(), 'http://localhost/files/auth/callback'], revocationAndIntrospection: true });
  });
  after(async () => {
    await oidc?.close();
  });

  it('a provider token whose introspection shows fewer scopes than the block requires gets 403 with the challenge; one with all of them is served', async () => {
    // both packages sign in with the same confidential client, so the provider's introspection judges their tokens
    const client = { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET', env_var_name: 'PACKAGE_TOKEN' };
    const gw = await startPkceGateway(oidc, {
      'mailbox-post': pkceEntry(pkceAuth(oidc, { ...client, scopes: ['openid', 'profile'] })),
      'mailbox-checked': pkceEntry(pkceAuth(oidc, { ...client, scopes: ALL })),
    });
    try {
      const tokenOf = async (name: string): Promise<{ access_token: string; scope: string }> => {
        const res = await fetch(await loginThroughProvider(loginUrl(gw, name)));
        const body = (await res.json()) as { token_data: { access_token: string; scope: string } };
        expect(res.status, JSON.stringify(body)).to.equal(200);
        return body.token_data;
      };
      const narrow = await tokenOf('mailbox-post');
      expect(narrow.scope).to.equal('openid profile');
      const wide = await tokenOf('mailbox-checked');
      expect(wide.scope).to.equal('openid profile mail.read');
      const publicUrl = gw.kernel.publicUrl();

      const refused = await getEnv(gw.base, 'mailbox-checked', { authorization: `Bearer ${narrow.access_token}` });
      expect(refused.status).to.equal(403);
      expect(refused.headers.get('www-authenticate')).to.equal(
        'Bearer realm="mailbox-checked", error="insufficient_scope", scope="openid profile mail.read", '
        + `resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/mailbox-checked/mcp", `
        + 'error_description="the token was not granted mail.read, which mailbox-checked requires: authorize again with the scope given here"',
      );
      expect(refused.error).to.deep.equal({
        code: 'FMCP_ERR_FORBIDDEN',
        message: 'insufficient_scope: the token sent to "mailbox-checked" was granted "openid profile", but "mailbox-checked" requires "openid profile mail.read" (missing: mail.read). '
          + `An MCP client authorizes again by itself with scope="openid profile mail.read"; by hand, sign in again at ${publicUrl}/mailbox-checked/auth/login and send the new access_token`,
      });

      // the same token is enough for the package that asks for less, and the wider one for both
      const narrowOk = await getEnv(gw.base, 'mailbox-post', { authorization: `Bearer ${narrow.access_token}` });
      expect(narrowOk.status).to.equal(200);
      expect(narrowOk.env!.PACKAGE_TOKEN).to.equal(narrow.access_token);
      const wideOk = await getEnv(gw.base, 'mailbox-checked', { authorization: `Bearer ${wide.access_token}` });
      expect(wideOk.status).to.equal(200);
      expect(wideOk.env!.PACKAGE_TOKEN).to.equal(wide.access_token);
    } finally {
      await gw.stop();
    }
  });

  it('"required_scopes": [] checks no scope: the narrow token is served', async () => {
    const client = { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET', env_var_name: 'PACKAGE_TOKEN' };
    const gw = await startPkceGateway(oidc, {
      'mailbox-post': pkceEntry(pkceAuth(oidc, { ...client, scopes: ['openid', 'profile'] })),
      'mailbox-checked': pkceEntry(pkceAuth(oidc, { ...client, scopes: ALL, required_scopes: [] })),
    });
    try {
      const res = await fetch(await loginThroughProvider(loginUrl(gw, 'mailbox-post')));
      const { token_data: narrow } = (await res.json()) as { token_data: { access_token: string } };
      const served = await getEnv(gw.base, 'mailbox-checked', { authorization: `Bearer ${narrow.access_token}` });
      expect(served.status).to.equal(200);
      expect(served.env!.PACKAGE_TOKEN).to.equal(narrow.access_token);
    } finally {
      await gw.stop();
    }
  });

  describe('sealed tokens and the SDK client', () => {
    let browser: Browser;
    let listener: RedirectListener;
    const tokenKey = randomBytes(32).toString('base64url');
    const gateways: TestGateway[] = [];

    before(async () => {
      browser = await launchChromium();
      listener = await startRedirectListener();
    });
    after(async () => {
      await browser?.close();
      await listener?.close();
      for (const gw of gateways) await gw.stop();
    });

    /** a gateway serving "files" with these scopes, on `port` (0: any) */
    async function filesGateway(scopes: string[], port: number): Promise<TestGateway> {
      const gw = await startPkceGateway(oidc, { files: pkceEntry(pkceAuth(oidc, { env_var_name: 'PACKAGE_TOKEN', scopes })) }, { plugin: { tokenKeys: [tokenKey] }, kernel: { port } });
      gateways.push(gw);
      return gw;
    }

    for (const sdk of SDKS) {
      it(`a sealed token granted fewer scopes than the package now requires gets 403; the ${sdk.name} SDK client steps up through the browser and is served`, async () => {
        // the operator adds mail.read to the block: tokens issued before lack it
        const before = await filesGateway(['openid', 'profile'], 0);
        const port = before.kernel.address().port;
        const publicUrl = before.kernel.publicUrl();
        const url = new URL(`${publicUrl}/files/mcp`);
        const provider = new MemoryOAuthProvider(listener.redirectUri);
        expect(await sdk.connect(url, provider).catch((err: unknown) => err)).to.be.instanceOf(sdk.Unauthorized);
        expect(provider.authorizationUrl?.searchParams.get('scope')).to.equal('openid profile');
        const first = await signInWithBrowser(browser, provider.authorizationUrl!, listener);
        await sdk.finishAuth(url, provider, first.callback);
        expect(provider.saved!.scope).to.equal('openid profile');
        const narrow = provider.saved!;
        expect((await getEnv(before.base, 'files', { authorization: `Bearer ${narrow.access_token}` })).status).to.equal(200);
        await before.stop();

        const now = await filesGateway(ALL, port);
        expect(now.kernel.publicUrl()).to.equal(publicUrl);
        const refused = await getEnv(now.base, 'files', { authorization: `Bearer ${narrow.access_token}` });
        expect(refused.status).to.equal(403);
        expect(refused.headers.get('www-authenticate')).to.equal(
          `Bearer realm="files", error="insufficient_scope", scope="openid profile mail.read", resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/files/mcp", `
          + 'error_description="the token was not granted mail.read, which files requires: authorize again with the scope given here"',
        );
        expect(refused.error!.message).to.include('was granted "openid profile", but "files" requires "openid profile mail.read" (missing: mail.read)');

        // its refresh token cannot widen the grant: invalid_grant, so a client signs in again
        const refresh = await fetch(`${now.base}/files/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: narrow.refresh_token!, client_id: provider.client!.client_id }),
        });
        expect(refresh.status).to.equal(400);
        expect(await refresh.json()).to.deep.equal({
          error: 'invalid_grant',
          error_description: 'this sign-in was not granted mail.read, which files now requires: authorize again with the scope openid profile mail.read',
        });

        // the client: 403 -> a new authorization with the challenge's scope (v1 tries its refresh token first, is
        // refused, and drops its tokens; v2 sees the scope is wider than its token's and goes straight to the browser)
        expect(await sdk.connect(url, provider).catch((err: unknown) => err)).to.be.instanceOf(sdk.Unauthorized);
        expect(provider.invalidated).to.deep.equal(sdk.invalidates);
        expect(provider.authorizationUrl?.searchParams.get('scope')?.split(' ').sort()).to.deep.equal([...ALL].sort());
        const second = await signInWithBrowser(browser, provider.authorizationUrl!, listener);
        expect(second.consentText).to.include('mail.read');
        await sdk.finishAuth(url, provider, second.callback);
        expect(provider.saved!.scope).to.equal('openid profile mail.read');

        const connected = await sdk.connect(url, provider);
        try {
          const env = await connected.getEnv();
          expect(env.PACKAGE_TOKEN).to.be.a('string').and.not.equal('');
          expect(provider.saved!.access_token).to.not.include(env.PACKAGE_TOKEN!);
        } finally {
          await connected.close();
        }
        await now.stop();
      });
    }
  });
});
