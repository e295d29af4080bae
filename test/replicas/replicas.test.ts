import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { everythingMetadata, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { postJson } from '../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../helpers/oidc.js';
import { parseMetrics, sampleValue } from '../helpers/prometheus.js';
import { freePort, skipWithout, startNginx, startRedis, type NginxServer, type RedisServer } from '../helpers/services.js';
import { mailboxEntry, pkceAuth } from '../plugins/auth-oauth2-pkce/pkce-gateway.js';

/**
 * Two `fluidmcp run` replicas with one Redis store behind nginx, configured as docs/deploy.md says, with
 * oidc-provider as the OAuth server: logins cross replicas, sessions stay on theirs, Redis can go away.
 */

interface Replica {
  readonly id: string;
  readonly cli: RunningCli;
  readonly port: number;
  /** http://127.0.0.1:<port>, the replica itself, not through nginx */
  readonly direct: string;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { redirect: 'manual', headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status: res.status, body, text };
}

/** The same URL at another origin: the callback the provider sent to nginx, sent to a chosen place instead. */
const at = (url: string, origin: string): string => {
  const u = new URL(url);
  return `${origin}${u.pathname}${u.search}`;
};

const errorCode = (body: Record<string, unknown>): unknown => (body.error as { code?: unknown } | undefined)?.code;

describe('replicas: two gateways, one Redis, behind nginx', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let nginx: NginxServer;
  let oidc: OidcServer;
  let a: Replica;
  let b: Replica;
  /** http://127.0.0.1:<nginx port> */
  let front: string;
  const tree = suiteTempTree();
  const replicas: Replica[] = [];

  before(async function () {
    skipWithout(this, 'redis-server', 'nginx');
    const nginxPort = await freePort();
    [redis, oidc] = await Promise.all([startRedis(), startOidcServer()]);
    const config = tree.write('config.json', {
      mcpServers: { ...everythingMetadata(['everything']).mcpServers, mailbox: mailboxEntry(pkceAuth(oidc)) },
      stateStore: redis.url(0),
    });
    const start = async (id: string): Promise<Replica> => {
      const cli = new RunningCli(
        ['run', '--file', config, '--start-server', '--port', '0', '--replica-id', id, '--metrics', '--public-url', `http://localhost:${nginxPort}`],
        { env: { MAILBOX_CLIENT_ID: oidc.publicClient.clientId, FMCP_TOKEN_KEYS: '4f1c0e7a9b2d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6' } },
      );
      const replica = { id, cli, port: 0, direct: '' };
      replicas.push(replica);
      const port = Number((await cli.waitFor('stdout', /Starting FluidMCP server on port (\d+)\n/, 20_000))[1]);
      await cli.ready();
      return { id, cli, port, direct: `http://127.0.0.1:${port}` };
    };
    [a, b] = await Promise.all([start('a'), start('b')]);
    nginx = await startNginx([a, b], { port: nginxPort });
    front = `http://127.0.0.1:${nginx.port}`;
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.cli.stop()));
    await nginx?.stop();
    await redis?.stop();
    await oidc?.close();
  });

  const metricsOf = async (r: Replica) => parseMetrics(await (await fetch(`${r.direct}/metrics`)).text());

  it('completes a login started at replica A with the callback forced to replica B, and refuses its replay at A', async () => {
    // counters from this test's start: any test of this file may run first, or alone
    const outcome = async (r: Replica, kind: string): Promise<number> => sampleValue(await metricsOf(r), 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: kind }) ?? 0;
    const [successBefore, badBefore] = [await outcome(b, 'success'), await outcome(a, 'bad_state')];
    const callback = await loginThroughProvider(`${a.direct}/mailbox/auth/login`);
    // the provider sends the browser to the public URL (nginx); this test sends it to B instead
    expect(callback.startsWith(`http://localhost:${nginx.port}/mailbox/auth/callback?`)).to.equal(true);
    const done = await get(at(callback, b.direct));
    expect(done.status, done.text).to.equal(200);
    expect(done.body.success).to.equal(true);
    expect((done.body.token_data as { access_token?: string }).access_token).to.be.a('string');
    const replay = await get(at(callback, a.direct));
    expect(replay.status).to.equal(400);
    expect(String((replay.body.error as { message: string }).message)).to.contain('Invalid or expired state parameter');
    expect(await outcome(b, 'success')).to.equal(successBefore + 1);
    expect(await outcome(a, 'bad_state')).to.equal(badBefore + 1);
  });

  it('completes logins through nginx, wherever it sends the login and the callback', async () => {
    for (let i = 0; i < 3; i++) {
      const callback = await loginThroughProvider(`${front}/mailbox/auth/login`);
      const done = await get(at(callback, front));
      expect(done.status, done.text).to.equal(200);
    }
  });

  it('hands a state replayed at both replicas at the same moment to exactly one of them', async () => {
    for (let i = 0; i < 3; i++) {
      const callback = await loginThroughProvider(`${front}/mailbox/auth/login`);
      const answers = await Promise.all([get(at(callback, a.direct)), get(at(callback, b.direct))]);
      expect(answers.map((x) => x.status).sort()).to.deep.equal([200, 400]);
    }
  });

  it('serves Bearer calls on any replica, each starting its own process for the token', async () => {
    const callback = await loginThroughProvider(`${front}/mailbox/auth/login`);
    const token = ((await get(at(callback, front))).body.token_data as { access_token: string }).access_token;
    const before = await Promise.all([a, b].map(async (r) => sampleValue(await metricsOf(r), 'fluidmcp_server_starts_total', { package: 'mailbox' }) ?? 0));
    for (const r of [a, b]) {
      const res = await postJson(`${r.direct}/mailbox/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { authorization: `Bearer ${token}` });
      expect(res.status, res.text).to.equal(200);
      expect(JSON.stringify(res.json)).to.contain('"tools"');
    }
    const through = await postJson(`${front}/mailbox/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { authorization: `Bearer ${token}` });
    expect(through.status).to.equal(200);
    const after = await Promise.all([a, b].map(async (r) => sampleValue(await metricsOf(r), 'fluidmcp_server_starts_total', { package: 'mailbox' }) ?? 0));
    expect(after.map((n, i) => n - before[i]!)).to.deep.equal([1, 1]);
    expect((await postJson(`${front}/mailbox/mcp`, { jsonrpc: '2.0', id: 3, method: 'tools/list' })).status).to.equal(401);
  });

  it('keeps an SDK client session on its replica through nginx: tools listed, echo called 100 times', async () => {
    const owners = await Promise.all([a, b].map(async (r) => sampleValue(await metricsOf(r), 'fluidmcp_call_duration_seconds_count', { package: 'everything', outcome: 'ok' }) ?? 0));
    const transport = new StreamableHTTPClientTransport(new URL(`${front}/everything/mcp`));
    const client = new Client({ name: 'replica-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const session = transport.sessionId!;
      expect(session).to.match(/^[ab]\.[0-9a-f]{32}$/);
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).to.include('echo');
      for (let i = 0; i < 100; i++) {
        const result = await client.callTool({ name: 'echo', arguments: { message: `call ${i}` } });
        expect((result.content as { text: string }[])[0]!.text).to.equal(`Echo: call ${i}`);
      }
      const now = await Promise.all([a, b].map(async (r) => sampleValue(await metricsOf(r), 'fluidmcp_call_duration_seconds_count', { package: 'everything', outcome: 'ok' }) ?? 0));
      const owner = session.startsWith('a.') ? 0 : 1;
      expect(now[owner]! - owners[owner]!).to.equal(101); // tools/list and 100 calls
      expect(now[1 - owner]! - owners[1 - owner]!).to.equal(0);
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    }
  });

  it('keeps a legacy HTTP+SSE session on its replica through nginx by its ?sessionId=', async () => {
    for (let round = 0; round < 4; round++) {
      const transport = new SSEClientTransport(new URL(`${front}/everything/sse`));
      const client = new Client({ name: 'legacy-replica-test', version: '1.0.0' });
      await client.connect(transport);
      try {
        for (let i = 0; i < 10; i++) {
          const result = await client.callTool({ name: 'echo', arguments: { message: `legacy ${round}.${i}` } });
          expect((result.content as { text: string }[])[0]!.text).to.equal(`Echo: legacy ${round}.${i}`);
        }
      } finally {
        await client.close();
      }
    }
  });

  it('answers a session id that reaches the wrong replica with 404, so the client initializes again', async () => {
    const init = await postJson(`${front}/everything/mcp`, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    expect(init.status).to.equal(200);
    const session = init.headers.get('mcp-session-id')!;
    const [mine, other] = session.startsWith('a.') ? [a, b] : [b, a];
    const headers = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
    const call = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    const wrong = await postJson(`${other.direct}/everything/mcp`, call, headers);
    expect(wrong.status).to.equal(404);
    expect(wrong.json).to.deep.include({ jsonrpc: '2.0', id: 2 });
    expect(((wrong.json as { error: { message: string } }).error.message)).to.contain('Session not found');
    expect((await postJson(`${mine.direct}/everything/mcp`, call, headers)).status).to.equal(200);
    expect((await postJson(`${front}/everything/mcp`, call, headers)).status).to.equal(200);
  });

  it('keeps /metrics off the public side: nginx answers 404, each replica serves its own', async () => {
    expect((await fetch(`${front}/metrics`)).status).to.equal(404);
    for (const r of [a, b]) expect((await fetch(`${r.direct}/metrics`)).status).to.equal(200);
  });

  it('answers a callback with a 503 JSON error at once when Redis stops, keeps serving calls, and logs in again once Redis is back', async () => {
    const unavailableBefore = sampleValue(await metricsOf(b), 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'store_unavailable' }) ?? 0;
    const callback = await loginThroughProvider(`${front}/mailbox/auth/login`);
    const port = redis.port;
    await redis.stop();
    const started = Date.now();
    const refused = await get(at(callback, b.direct));
    expect(Date.now() - started).to.be.below(5000);
    expect(refused.status, refused.text).to.equal(503);
    expect(errorCode(refused.body)).to.equal('FMCP_ERR_STATE_STORE');
    expect(String((refused.body.error as { message: string }).message)).to.match(
      new RegExp(`^The pending-state store is unavailable: the login to "mailbox" cannot finish \\(Redis at redis://127\\.0\\.0\\.1:${port}/0 could not take a pending login: .+\\); retry this callback in a moment`),
    );
    const login = await get(`${a.direct}/mailbox/auth/login`);
    expect(login.status).to.equal(503);
    for (let i = 0; i < 5; i++) {
      const res = await postJson(`${front}/everything/mcp`, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { message: 'still here' } } });
      expect(res.status).to.equal(200);
      expect(JSON.stringify(res.json)).to.contain('still here');
    }
    expect((await get(`${b.direct}/health`)).status).to.equal(200);
    expect(sampleValue(await metricsOf(b), 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'store_unavailable' })).to.equal(unavailableBefore + 1);
    const scrape = await get(`${a.direct}/metrics`);
    expect(scrape.status).to.equal(200);
    expect(sampleValue(parseMetrics(scrape.text), 'fluidmcp_pending_logins')).to.be.NaN;

    redis = await startRedis({ port });
    const deadline = Date.now() + 10_000;
    let again = await get(`${a.direct}/mailbox/auth/login`);
    while (again.status !== 302 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      again = await get(`${a.direct}/mailbox/auth/login`);
    }
    expect(again.status).to.equal(302);
    const fresh = await loginThroughProvider(`${front}/mailbox/auth/login`);
    expect((await get(at(fresh, front))).status).to.equal(200);
  });
});
