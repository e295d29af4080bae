import { expect } from 'chai';
import { pino } from 'pino';
import { postJson } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { get, mailboxEntry, pkceAuth, RecordingStore, redirectUris, startPkceGateway, storePlugin } from './pkce-gateway.js';

describe('auth-oauth2-pkce: the log at trace level holds no secret', function () {
  let oidc: OidcServer;

  before(async () => {
    oidc = await startOidcServer({ redirectUris: redirectUris() });
  });
  after(() => oidc?.close());

  it('logs the whole flow (logins, calls, refresh, failures) without a token, code, verifier, state or secret', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
    const store = new RecordingStore();
    const checked = mailboxEntry(pkceAuth(oidc, { validate_url: oidc.userinfoUrl }));
    checked.env = { MAILBOX_USERINFO_URL: oidc.userinfoUrl };
    const gw = await startPkceGateway(
      oidc,
      {
        mailbox: mailboxEntry(pkceAuth(oidc)),
        'mailbox-post': mailboxEntry(pkceAuth(oidc, { client_id_env: 'POST_CLIENT_ID', client_secret_env: 'POST_CLIENT_SECRET' })),
        'mailbox-checked': checked,
      },
      { kernel: { logger }, extraPlugins: [storePlugin(store)] },
    );

    const secrets: string[] = [oidc.confidentialClient.clientSecret!];
    try {
      for (const name of ['mailbox', 'mailbox-post', 'mailbox-checked']) {
        const callback = new URL(await loginThroughProvider(gw.url(`/${name}/auth/login`)));
        secrets.push(callback.searchParams.get('code')!, callback.searchParams.get('state')!);
        const res = await get(callback.href);
        expect(res.status, res.text).to.equal(200);
        const tokens = res.body.token_data as Record<string, string>;
        secrets.push(tokens.access_token!, tokens.refresh_token!, tokens.id_token!);

        const call = await postJson(gw.url(`/${name}/mcp`), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, { authorization: `Bearer ${tokens.access_token}` });
        expect(call.status, call.text).to.equal(200);
        expect(call.text).to.not.contain('isError');

        const refreshed = await fetch(gw.url(`/${name}/auth/refresh`), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
        const fresh = ((await refreshed.json()) as { token_data: Record<string, string> }).token_data;
        secrets.push(fresh.access_token!, fresh.refresh_token!);

        // failures log too: a replayed callback, a replayed code, a wrong token
        expect((await get(callback.href)).status).to.equal(400);
        expect((await postJson(gw.url(`/${name}/mcp`), { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { authorization: 'Bearer wrong-token-5b2f9' })).status, 'a wrong token: every server verifies it (validate_url, or the provider\'s own endpoint)').to.equal(401);
        secrets.push('wrong-token-5b2f9');
      }
      const denied = await loginThroughProvider(gw.url('/mailbox/auth/login'), { deny: true });
      secrets.push(new URL(denied).searchParams.get('state')!);
      expect((await get(denied)).status).to.equal(400);
    } finally {
      await gw.stop();
    }

    secrets.push(...store.puts.map((p) => String(p.value.verifier)), ...store.puts.map((p) => p.key));
    const log = lines.join('');
    if (process.env.SHOW_LOG) process.stderr.write(log);
    expect(lines.length).to.be.above(5);
    expect(log).to.contain('login completed');
    for (const secret of secrets) {
      expect(secret, 'every secret was captured').to.be.a('string').with.length.above(8);
      expect(log.includes(secret), `the log contains ${secret.slice(0, 6)}…`).to.equal(false);
    }
  });
});
