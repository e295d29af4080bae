import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { postJson, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { errorCode, errorMessage, get, loginUrl, mailboxEntry, pkceAuth, redirectUris, startPkceGateway } from './pkce-gateway.js';

const sha12 = (token: string): string => createHash('sha256').update(token).digest('hex').slice(0, 12);

interface Whoami {
  user: string;
  token_sha256: string;
  pid: number;
}

/** Calls the mailbox's whoami with a bare JSON-RPC POST, as the seed's curl does. */
async function whoami(gw: TestGateway, name: string, token: string): Promise<Whoami> {
  const res = await postJson(gw.url(`/${name}/mcp`), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, { authorization: `Bearer ${token}` });
  expect(res.status, res.text).to.equal(200);
  const result = (res.json as { result: { content: { text: string }[]; isError?: boolean } }).result;
  expect(result.isError, result.content[0]!.text).to.not.equal(true);
  return JSON.parse(result.content[0]!.text) as Whoami;
}

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

describe('auth-oauth2-pkce: Bearer tokens and one server process per token', function () {
  let oidc: OidcServer;
  let gw: TestGateway;
  const started: TestGateway[] = [];

  before(async () => {
    oidc = await startOidcServer({ redirectUris: redirectUris() });
    const checked = mailboxEntry(pkceAuth(oidc, { validate_url: oidc.userinfoUrl }));
    checked.env = { MAILBOX_USERINFO_URL: oidc.userinfoUrl };
    gw = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)), 'mailbox-checked': checked });
  });

  after(async () => {
    await Promise.all([gw?.stop(), ...started.map((g) => g.stop())]);
    await oidc?.close();
  });

  it('runs the whole flow: login, callback, then a tools/call whose server sees the token in its environment', async () => {
    const token = await tokenOf(gw, 'mailbox', 'alice');
    const me = await whoami(gw, 'mailbox', token);
    expect(me.token_sha256).to.equal(sha12(token));
    expect(me.user).to.equal(`token ${sha12(token)}`);

    const list = await postJson(gw.url('/mailbox/mcp'), { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'list_messages', arguments: { limit: 2 } } }, { authorization: `Bearer ${token}` });
    expect((list.json as { result: { content: { text: string }[] } }).result.content[0]!.text).to.match(/^Inbox of token [0-9a-f]{12}:\n1 {2}welcome@/);
  });

  it('gives two tokens two processes, each with its own token only, and reuses a process for its token', async () => {
    const alice = await tokenOf(gw, 'mailbox', 'alice');
    const bob = await tokenOf(gw, 'mailbox', 'bob');
    const [a, b] = await Promise.all([whoami(gw, 'mailbox', alice), whoami(gw, 'mailbox', bob)]);
    expect(a.pid).to.not.equal(b.pid);
    expect(a.token_sha256).to.equal(sha12(alice));
    expect(b.token_sha256).to.equal(sha12(bob));
    const again = await whoami(gw, 'mailbox', alice);
    expect(again.pid).to.equal(a.pid);
    expect(await processCount(gw, 'mailbox')).to.be.at.least(2);
  });

  it('refuses a call without a Bearer: 401, WWW-Authenticate, and a JSON body pointing at the login URL', async () => {
    const before = await processCount(gw, 'mailbox');
    const res = await postJson(gw.url('/mailbox/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(res.status).to.equal(401);
    expect(res.headers.get('www-authenticate')).to.equal(`Bearer realm="mailbox", ${resourceChallenge(gw, 'mailbox')}`);
    const body = res.json as Record<string, unknown>;
    expect(errorCode(body)).to.equal('FMCP_ERR_UNAUTHORIZED');
    expect(errorMessage(body)).to.equal(
      `"mailbox" needs a Bearer token: sign in at ${loginUrl(gw, 'mailbox')}, then send the access_token as "Authorization: Bearer <access_token>"`,
    );
    expect(await processCount(gw, 'mailbox')).to.equal(before);

    for (const path of ['/mailbox/mcp/tools/list', '/mailbox/sse']) {
      const r = path.endsWith('sse')
        ? await postJson(gw.url(path), { jsonrpc: '2.0', id: 1, method: 'tools/list' })
        : await get(gw.url(path));
      expect(r.status, path).to.equal(401);
      expect(r.headers.get('www-authenticate'), path).to.match(/^Bearer /);
    }
  });

  it('refuses an Authorization header that is not a Bearer token', async () => {
    for (const header of ['Basic YWxpY2U6eA==', 'Bearer', 'Bearer two words', 'Bearer tok"en']) {
      const res = await postJson(gw.url('/mailbox/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { authorization: header });
      expect(res.status, header).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal(`Bearer realm="mailbox", error="invalid_request", ${resourceChallenge(gw, 'mailbox')}`);
      expect(errorMessage(res.json as Record<string, unknown>)).to.contain('is not "Bearer <access_token>"');
    }
  });

  it('serves Bearer callers on /sse and the tool routes too', async () => {
    const token = await tokenOf(gw, 'mailbox', 'dana');
    const tools = await get(gw.url('/mailbox/mcp/tools/list'), { authorization: `Bearer ${token}` });
    expect(tools.status, tools.text).to.equal(200);
    expect(tools.text).to.contain('whoami');
    const sse = await fetch(gw.url('/mailbox/sse'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
    expect(sse.status).to.equal(200);
    expect(await sse.text()).to.contain(sha12(token));
  });

  it('works with the official SDK client sending the Bearer', async () => {
    const token = await tokenOf(gw, 'mailbox', 'erin');
    const client = new Client({ name: 'pkce-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(gw.url('/mailbox/mcp')), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    await client.connect(transport);
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      const me = JSON.parse((result.content as { text: string }[])[0]!.text) as Whoami;
      expect(me.token_sha256).to.equal(sha12(token));
    } finally {
      await client.close();
    }
  });

  it('with validate_url, checks the token at the provider: a good one reaches the server, a bad one gets 401 and no process', async () => {
    const token = await tokenOf(gw, 'mailbox-checked', 'frank');
    const me = await whoami(gw, 'mailbox-checked', token);
    expect(me.user).to.equal('frank'); // the mailbox asked the provider with the token it was given
    const before = await processCount(gw, 'mailbox-checked');

    const res = await postJson(gw.url('/mailbox-checked/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { authorization: 'Bearer not-a-real-token' });
    expect(res.status).to.equal(401);
    expect(res.headers.get('www-authenticate')).to.equal(`Bearer realm="mailbox-checked", error="invalid_token", ${resourceChallenge(gw, 'mailbox-checked')}`);
    expect(errorMessage(res.json as Record<string, unknown>)).to.contain('The provider rejected the token sent to "mailbox-checked"');
    expect(await processCount(gw, 'mailbox-checked')).to.equal(before);
  });

  it('caps processes per server: beyond the cap the least recently used idle one stops', async () => {
    const g = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, { proxy: { maxInstances: 2, instanceEvictIdleMs: 0 } });
    started.push(g);
    const [one, two, three] = [await tokenOf(g, 'mailbox', 'ann'), await tokenOf(g, 'mailbox', 'ben'), await tokenOf(g, 'mailbox', 'cat')];
    const first = await whoami(g, 'mailbox', one);
    await whoami(g, 'mailbox', two);
    await whoami(g, 'mailbox', three);
    expect(await processCount(g, 'mailbox')).to.be.at.most(2);
    const back = await whoami(g, 'mailbox', one);
    expect(back.pid).to.not.equal(first.pid);
    expect(back.token_sha256).to.equal(sha12(one));
  });
});

/** The RFC 9728 parameters every challenge of an oauth2/pkce package carries (scopes of pkceAuth()). */
function resourceChallenge(gw: TestGateway, name: string): string {
  return `resource_metadata="${gw.kernel.publicUrl()}/.well-known/oauth-protected-resource/${name}/mcp", scope="openid profile mail.read"`;
}
