import { expect } from 'chai';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { authOAuth2Pkce, proxyJsonRpc, transportSse, transportStdio, type ServerEntry } from '../../index.js';
import { processesWith, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../helpers/oidc.js';
import { fixture } from '../helpers/paths.js';
import { waitFor } from '../helpers/request.js';
import { messagesOf, send, sleep } from './load-driver.js';

const INVALID_STATE = 'Invalid or expired state parameter';
const LOGINS = 100_000;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A server that runs rel-env-hash.mjs behind the oauth2/pkce strategy, its token in REL_ACCESS_TOKEN. */
function guarded(urls: { authorization: string; token: string; validate?: 'none' }, extraArgs: string[] = []): ServerEntry {
  return {
    command: process.execPath,
    args: [fixture('rel-env-hash.mjs'), ...extraArgs],
    auth: {
      type: 'oauth2',
      flow: 'pkce',
      authorization_url: urls.authorization,
      token_url: urls.token,
      scopes: ['openid'],
      client_id_env: 'REL_CLIENT_ID',
      env_var_name: 'REL_ACCESS_TOKEN',
      ...(urls.validate ? { validate: urls.validate } : {}),
    },
  };
}
/** No provider listens there: its tokens are made up, served unverified ("validate": "none"). */
const DUMMY_PROVIDER = { authorization: 'http://127.0.0.1:9/authorize', token: 'http://127.0.0.1:9/token', validate: 'none' as const };

async function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const answer = await send({ port, path, method: 'GET', body: '', timeoutMs: 10_000 });
  return { status: answer.status, body: answer.text ? (JSON.parse(answer.text) as Record<string, unknown>) : {}, headers: answer.headers };
}
const errorMessage = (body: Record<string, unknown>): string => String((body.error as { message?: string } | undefined)?.message);

describe('reliability: auth abuse', function () {
  this.timeout(300_000);

  describe(`${LOGINS.toLocaleString('en')} login starts against fluidmcp run`, () => {
    const tree = suiteTempTree();
    const marker = `fmcp-rel-logins-${randomUUID()}`;
    let cli: RunningCli;
    let port: number;

    before(async () => {
      const config = tree.write('config.json', { mcpServers: { secure: guarded(DUMMY_PROVIDER, [marker]) } });
      cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0', '--plugin', fixture('rel-pending-probe.mjs')], { env: { REL_CLIENT_ID: 'rel-client' } });
      port = Number(new URL(await cli.ready(30_000)).port);
    });
    after(async () => {
      await cli?.stop('SIGTERM');
    });

    it('keeps the pending logins at maxPendingLogins (1000); every state is new', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 32 });
      const states = new Set<string>();
      let first: string | undefined;
      let started = 0;
      let refused = 0;
      const pendingSeen: number[] = [];
      const loginBatch = async (count: number): Promise<void> => {
        let next = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < count) {
              next++;
              const answer = await send({ port, path: '/secure/auth/login', method: 'GET', body: '', agent, timeoutMs: 10_000 });
              const state = answer.status === 302 ? new URL(String(answer.headers.location)).searchParams.get('state') : null;
              if (!state || states.has(state)) {
                refused++;
                continue;
              }
              first ??= state;
              states.add(state);
              started++;
            }
          }),
        );
        pendingSeen.push((await getJson(port, '/_rel/pending')).body.pending as number);
      };
      const begin = Date.now();
      try {
        // memory figures are the benchmark's (npm run bench): no RSS bound here
        for (let done = 0; done < LOGINS; done += 20_000) await loginBatch(Math.min(20_000, LOGINS - done));
        console.log(`      auth: ${started} login starts in ${((Date.now() - begin) / 1000).toFixed(1)} s, ${refused} refused or repeated states; pending after each batch ${pendingSeen.join(', ')}`);
        expect(refused).to.equal(0);
        expect(started).to.equal(LOGINS);
        for (const pending of pendingSeen) expect(pending).to.equal(1000);
      } finally {
        agent.destroy();
      }
      // the oldest login was dropped to make room; the newest still waits for its callback
      const oldest = await getJson(port, `/secure/auth/callback?state=${first}&code=x`);
      expect(oldest.status).to.equal(400);
      expect(errorMessage(oldest.body)).to.include(INVALID_STATE);
      const newest = [...states].at(-1)!;
      const fresh = await getJson(port, `/secure/auth/callback?state=${newest}`);
      expect(fresh.status).to.equal(400);
      expect(errorMessage(fresh.body)).to.include('has no "code" parameter');
      // no server process was started by logins alone
      expect(processesWith(marker)).to.deep.equal([]);
    });
  });

  describe('state replay and forged state, against a real provider', () => {
    let provider: OidcServer;
    let gw: TestGateway;
    let port: number;
    before(async () => {
      provider = await startOidcServer({ redirectUris: ['http://localhost/mailbox/auth/callback', 'http://localhost/other/auth/callback'] });
      const urls = { authorization: provider.authorizationUrl, token: provider.tokenUrl };
      gw = await startGateway(
        { mailbox: guarded(urls), other: guarded(urls) },
        { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: { REL_CLIENT_ID: provider.publicClient.clientId } })] },
      );
      port = gw.kernel.address().port;
    });
    after(async () => {
      await gw?.stop();
      await provider?.close();
    });

    const login = async (name = 'mailbox'): Promise<URL> => new URL(await loginThroughProvider(`http://localhost:${port}/${name}/auth/login`));
    const callbackPath = (url: URL): string => `${url.pathname}${url.search}`;

    it('accepts a callback once, and refuses the same callback again with 400 "Invalid or expired state parameter"', async () => {
      const url = await login();
      const first = await getJson(port, callbackPath(url));
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      expect(first.body.success).to.equal(true);
      expect((first.body.token_data as { access_token?: string }).access_token).to.be.a('string');
      const replay = await getJson(port, callbackPath(url));
      expect(replay.status).to.equal(400);
      expect(errorMessage(replay.body)).to.include(INVALID_STATE);
      expect(replay.headers['cache-control']).to.equal('no-store');
    });

    it('refuses a real code with a forged state, and the code is not spent by it', async () => {
      const url = await login();
      const forged = new URL(url);
      forged.searchParams.set('state', randomBytes(32).toString('base64url'));
      const answer = await getJson(port, callbackPath(forged));
      expect(answer.status).to.equal(400);
      expect(errorMessage(answer.body)).to.include(INVALID_STATE);
      // the real state still completes the login: a forged callback consumed nothing
      const real = await getJson(port, callbackPath(url));
      expect(real.status, JSON.stringify(real.body)).to.equal(200);
    });

    it('refuses a state at another package than the one it was issued for, and then at its own', async () => {
      const url = await login('mailbox');
      const elsewhere = await getJson(port, `/other/auth/callback${url.search}`);
      expect(elsewhere.status).to.equal(400);
      expect(errorMessage(elsewhere.body)).to.include(INVALID_STATE);
      const home = await getJson(port, callbackPath(url));
      expect(home.status).to.equal(400);
      expect(errorMessage(home.body)).to.include(INVALID_STATE);
    });

    it('refuses 1,000 forged states in a row and still completes a real login', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 16 });
      try {
        const statuses = await Promise.all(
          Array.from({ length: 1000 }, () => send({ port, agent, method: 'GET', body: '', timeoutMs: 10_000, path: `/mailbox/auth/callback?code=x&state=${randomBytes(32).toString('base64url')}` }).then((a) => a.status)),
        );
        expect(new Set(statuses)).to.deep.equal(new Set([400]));
      } finally {
        agent.destroy();
      }
      const done = await getJson(port, callbackPath(await login()));
      expect(done.status).to.equal(200);
    });
  });

  describe('an expired state', () => {
    let gw: TestGateway;
    after(() => gw?.stop());
    it('refuses a state used after pendingLoginTtlMs', async () => {
      gw = await startGateway(
        { mailbox: guarded(DUMMY_PROVIDER) },
        { plugins: [transportStdio(), proxyJsonRpc(), authOAuth2Pkce({ env: { REL_CLIENT_ID: 'rel-client' }, pendingLoginTtlMs: 200 })] },
      );
      const port = gw.kernel.address().port;
      const start = await send({ port, path: '/mailbox/auth/login', method: 'GET', body: '', timeoutMs: 5000 });
      const state = new URL(String(start.headers.location)).searchParams.get('state');
      await sleep(400);
      const late = await getJson(port, `/mailbox/auth/callback?state=${state}&code=x`);
      expect(late.status).to.equal(400);
      expect(errorMessage(late.body)).to.include(INVALID_STATE);
    });
  });

  describe('tokens of concurrent clients', () => {
    const marker = `fmcp-rel-tokens-${randomUUID()}`;
    let gw: TestGateway;
    let port: number;
    before(async () => {
      gw = await startGateway(
        { secure: guarded(DUMMY_PROVIDER, [marker]) },
        // eight made-up tokens, one process each: room for all of them in the unverified share
        { plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: { REL_CLIENT_ID: 'rel-client' }, unverifiedProcesses: 8 })] },
      );
      port = gw.kernel.address().port;
    });
    after(async () => {
      await gw?.stop();
      await waitFor(() => processesWith(marker).length === 0, 5000, 'the token processes to end');
    });

    it("never hands one client's token to another client's process (8 tokens, 32 clients, /mcp, /sse and sessions at once)", async () => {
      const tokens = Array.from({ length: 8 }, () => randomBytes(24).toString('base64url'));
      const pidsOf = new Map<string, Set<number>>(tokens.map((t) => [t, new Set<number>()]));
      const mismatches: string[] = [];
      let calls = 0;
      const agent = new Agent({ keepAlive: true, maxSockets: 32 });
      const deadline = Date.now() + 4000;
      const check = (token: string, client: number, text: string | undefined, id: unknown, expectedId: unknown): void => {
        calls++;
        if (id !== expectedId) {
          mismatches.push(`client ${client}: id ${JSON.stringify(id)} instead of ${JSON.stringify(expectedId)}`);
          return;
        }
        const seen = JSON.parse(text ?? '{}') as { hash?: string; pid?: number; tag?: string };
        if (seen.hash !== sha256(token)) mismatches.push(`client ${client}: its call ran in a process holding ${seen.hash === 'unset' ? 'no token' : 'another token'}`);
        if (seen.tag !== `${client}-${String(expectedId)}`) mismatches.push(`client ${client}: answer tagged ${seen.tag}`);
        if (seen.pid !== undefined) pidsOf.get(token)!.add(seen.pid);
      };
      const client = async (n: number): Promise<void> => {
        const token = tokens[n % tokens.length]!;
        const auth = { authorization: `Bearer ${token}` };
        let headers: Record<string, string> = auth;
        const mode = n % 4; // 0: bare /mcp, 1: session on /mcp, 2: POST /sse, 3: bare /mcp with a delay at the server
        if (mode === 1) {
          const init = await send({ port, agent, path: '/secure/mcp', headers: auth, timeoutMs: 10_000, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } }) });
          headers = { ...auth, 'mcp-session-id': String(init.headers['mcp-session-id']), 'mcp-protocol-version': '2025-11-25' };
        }
        for (let seq = 1; Date.now() < deadline; seq++) {
          const body = JSON.stringify({ jsonrpc: '2.0', id: seq, method: 'tools/call', params: { name: 'whoami', arguments: { tag: `${n}-${seq}`, ms: mode === 3 ? 5 : 0 } } });
          const answer = await send({ port, agent, path: mode === 2 ? '/secure/sse' : '/secure/mcp', headers, body, timeoutMs: 10_000 });
          if (answer.status !== 200) {
            mismatches.push(`client ${n}: HTTP ${answer.status} ${answer.text.slice(0, 200)}`);
            continue;
          }
          const response = messagesOf(answer).find((m) => m.method === undefined);
          check(token, n, (response?.result?.content as { text?: string }[] | undefined)?.[0]?.text, response?.id, seq);
        }
      };
      try {
        await Promise.all(Array.from({ length: 32 }, (_, n) => client(n)));
      } finally {
        agent.destroy();
      }
      const pids = [...pidsOf.values()].map((s) => [...s]);
      console.log(`      tokens: ${calls} calls with 8 tokens from 32 clients, ${mismatches.length} answered from the wrong process; processes per token ${pids.map((p) => p.length).join(', ')}`);
      expect(mismatches.slice(0, 10)).to.deep.equal([]);
      expect(calls).to.be.greaterThan(100);
      // one process per token, none shared between tokens
      for (const p of pids) expect(p).to.have.length(1);
      expect(new Set(pids.flat()).size).to.equal(tokens.length);
    });

    it("does not let a client use another token's session", async () => {
      const [a, b] = [randomBytes(24).toString('base64url'), randomBytes(24).toString('base64url')];
      const init = await send({ port, path: '/secure/mcp', headers: { authorization: `Bearer ${a}` }, timeoutMs: 10_000, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'a', version: '1' } } }) });
      const session = String(init.headers['mcp-session-id']);
      const stolen = await send({
        port,
        path: '/secure/mcp',
        headers: { authorization: `Bearer ${b}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
        timeoutMs: 10_000,
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
      });
      expect(stolen.status).to.equal(404);
      expect(stolen.text).to.not.include(sha256(a));
    });
  });
});
