import { expect } from 'chai';
import { pino } from 'pino';
import { register as globalRegistry } from 'prom-client';
import { authOAuth2Pkce, createKernel, definePlugin, metricsPrometheus, proxyJsonRpc, transportSse, transportStdio } from '../../../index.js';
import { everythingEntry, postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { loginThroughProvider, startOidcServer, type OidcServer } from '../../helpers/oidc.js';
import { labelValues, parseMetrics, sampleValue, type Sample } from '../../helpers/prometheus.js';
import { request, until, waitFor } from '../../helpers/request.js';
import { openSse } from '../transport-sse/sse-reader.js';
import { clientEnv, get, mailboxEntry, pkceAuth } from '../auth-oauth2-pkce/pkce-gateway.js';

async function scrape(gw: TestGateway): Promise<{ text: string; samples: Sample[]; contentType: string | null }> {
  const res = await fetch(gw.url('/metrics'));
  expect(res.status).to.equal(200);
  const text = await res.text();
  return { text, samples: parseMetrics(text), contentType: res.headers.get('content-type') };
}

const echo = (id: number, message: string): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });

describe('metrics-prometheus: GET /metrics', function () {
  this.timeout(30_000);

  describe('with a shared server', () => {
    let gw: TestGateway;

    before(async () => {
      gw = await startGateway({ everything: everythingEntry(), spare: everythingEntry() }, {
        plugins: [transportStdio(), proxyJsonRpc(), transportSse({ keepAliveMs: 0 }), metricsPrometheus()],
        // polling /health for the servers would count in the request totals: the calls below wait for them instead
        waitForServers: false,
      });
    });
    after(() => gw?.stop());

    it('counts a known sequence of calls: requests by package, route, method and status; call latency by package and outcome', async () => {
      // counters since this test began: other tests of this suite call the same gateway
      const start = (await scrape(gw)).samples;
      const since = (now: typeof start, name: string, labels: Record<string, string>): number => (sampleValue(now, name, labels) ?? 0) - (sampleValue(start, name, labels) ?? 0);
      for (let i = 1; i <= 5; i++) {
        const res = await postJson(gw.url('/everything/mcp'), echo(i, `hello ${i}`));
        expect(res.status).to.equal(200);
        expect(JSON.stringify(res.json)).to.contain(`hello ${i}`);
      }
      const refused = await postJson(gw.url('/everything/mcp'), { jsonrpc: '2.0', id: 6, method: 'nope/nothing' });
      expect((refused.json as { error?: unknown }).error).to.not.equal(undefined);
      expect((await postJson(gw.url('/nope-secret-pkg/mcp'), echo(7, 'x'))).status).to.equal(404);
      expect((await fetch(gw.url('/no/such/path/tok_abc123'))).status).to.equal(404);
      expect((await fetch(gw.url('/health'))).status).to.equal(200);
      // onResponse runs once the response finished: wait until the last request (/health) is counted
      const health = { package: '(none)', route: '/health', method: 'GET', status: '200' };
      const { samples, text, contentType } = await until(async () => {
        const scraped = await scrape(gw);
        return since(scraped.samples, 'fluidmcp_http_requests_total', health) >= 1 ? scraped : undefined;
      }, 5000, 'the /health request to be counted');
      expect(contentType).to.equal('text/plain; version=0.0.4; charset=utf-8');
      const requests = (labels: Record<string, string>): number => since(samples, 'fluidmcp_http_requests_total', labels);
      expect(requests({ package: 'everything', route: '/:name/mcp', method: 'POST', status: '200' })).to.equal(6);
      expect(requests({ package: '(unknown)', route: '/:name/mcp', method: 'POST', status: '404' })).to.equal(1);
      expect(requests({ package: '(none)', route: '(unmatched)', method: 'GET', status: '404' })).to.equal(1);
      expect(requests(health)).to.equal(1);
      expect(since(samples, 'fluidmcp_call_duration_seconds_count', { package: 'everything', outcome: 'ok' })).to.equal(5);
      expect(since(samples, 'fluidmcp_call_duration_seconds_count', { package: 'everything', outcome: 'error' })).to.equal(1);
      expect(since(samples, 'fluidmcp_call_duration_seconds_bucket', { package: 'everything', outcome: 'ok', le: '+Inf' })).to.equal(5);
      expect(sampleValue(samples, 'fluidmcp_call_duration_seconds_sum', { package: 'everything', outcome: 'ok' })).to.be.above(0);
      // a configured package that saw nothing is there at zero
      expect(sampleValue(samples, 'fluidmcp_call_duration_seconds_count', { package: 'spare', outcome: 'ok' })).to.equal(0);
      // nothing the client typed becomes a label value
      const values = labelValues(samples, 'fluidmcp_');
      expect(values.filter((v) => v.includes('nope') || v.includes('tok_') || v.includes('no/such'))).to.deep.equal([]);
      expect(text).not.to.contain('hello');
    });

    it('counts server processes up, started and crashed, through a crash and the restart', async () => {
      let { samples } = await scrape(gw);
      expect(sampleValue(samples, 'fluidmcp_server_processes', { package: 'everything' })).to.equal(1);
      const starts = sampleValue(samples, 'fluidmcp_server_starts_total', { package: 'everything' })!;
      const crashes = sampleValue(samples, 'fluidmcp_server_crashes_total', { package: 'everything' })!;
      expect(starts, 'started at least once').to.be.at.least(1);
      const health = (await (await fetch(gw.url('/health'))).json()) as { servers: { everything: { pid: number } } };
      process.kill(health.servers.everything.pid, 'SIGKILL');
      const deadline = Date.now() + 10_000;
      for (;;) {
        samples = (await scrape(gw)).samples;
        if (sampleValue(samples, 'fluidmcp_server_starts_total', { package: 'everything' }) === starts + 1) break;
        if (Date.now() > deadline) throw new Error('the server did not restart within 10 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(sampleValue(samples, 'fluidmcp_server_crashes_total', { package: 'everything' })).to.equal(crashes + 1);
      expect(sampleValue(samples, 'fluidmcp_server_processes', { package: 'everything' })).to.equal(1);
      expect(sampleValue(samples, 'fluidmcp_server_processes', { package: 'spare' })).to.equal(1);
    });

    it('counts open event streams', async () => {
      const { port } = gw.kernel.address();
      const before = sampleValue((await scrape(gw)).samples, 'fluidmcp_sse_streams_open');
      const a = await openSse(port, '/everything/sse');
      const b = await openSse(port, '/spare/sse');
      try {
        await waitFor(() => a.events.length > 0 && b.events.length > 0, 5000, 'both endpoint events');
        expect(sampleValue((await scrape(gw)).samples, 'fluidmcp_sse_streams_open')).to.equal(before! + 2);
        a.close();
        // the gateway sees the close a moment later: wait for it, then hold the exact figure
        await until(async () => (sampleValue((await scrape(gw)).samples, 'fluidmcp_sse_streams_open') === before! + 1 ? true : undefined), 5000, 'the closed stream to be counted out');
      } finally {
        a.close();
        b.close();
      }
    });

    it('includes the default process metrics', async () => {
      const { samples } = await scrape(gw);
      expect(sampleValue(samples, 'process_cpu_user_seconds_total')).to.be.above(0);
      expect(sampleValue(samples, 'nodejs_heap_size_total_bytes')).to.be.above(0);
    });
  });

  describe('with OAuth logins', () => {
    let oidc: OidcServer;
    let gw: TestGateway;

    before(async () => {
      oidc = await startOidcServer();
      gw = await startGateway({ mailbox: mailboxEntry(pkceAuth(oidc)) }, {
        plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: clientEnv(oidc) }), metricsPrometheus({ defaultMetrics: false })],
      });
    });
    after(async () => {
      await gw?.stop();
      await oidc?.close();
    });

    it('counts pending logins at scrape time and login outcomes (success, bad state, provider error), and a process per token', async () => {
      const login = `http://localhost:${gw.kernel.address().port}/mailbox/auth/login`;
      let { samples } = await scrape(gw);
      expect(sampleValue(samples, 'fluidmcp_pending_logins')).to.equal(0);
      expect(sampleValue(samples, 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'success' })).to.equal(0);
      expect(sampleValue(samples, 'fluidmcp_server_processes', { package: 'mailbox' })).to.equal(0);
      expect(sampleValue(samples, 'process_cpu_user_seconds_total')).to.equal(undefined);

      const started = await get(login);
      const state = new URL(started.headers.get('location')!).searchParams.get('state')!;
      const callback = await loginThroughProvider(login);
      expect(sampleValue((await scrape(gw)).samples, 'fluidmcp_pending_logins')).to.equal(2);

      const ok = await get(callback);
      expect(ok.status, ok.text).to.equal(200);
      expect((await get(callback)).status).to.equal(400); // replayed: bad state
      expect((await get(gw.url('/mailbox/auth/callback?state=forged-state-value&code=x'))).status).to.equal(400);
      expect((await get(gw.url(`/mailbox/auth/callback?state=${state}&error=access_denied`))).status).to.equal(400);
      const token = (ok.body.token_data as { access_token: string }).access_token;
      const call = await postJson(gw.url('/mailbox/mcp'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { authorization: `Bearer ${token}` });
      expect(call.status).to.equal(200);
      // onResponse runs once the response finished: wait until the Bearer call is counted
      const scraped = await until(async () => {
        const now = await scrape(gw);
        return sampleValue(now.samples, 'fluidmcp_http_requests_total', { package: 'mailbox', route: '/:name/mcp', method: 'POST', status: '200' }) === 1 ? now : undefined;
      }, 5000, 'the Bearer call to be counted');
      samples = scraped.samples;
      expect(sampleValue(samples, 'fluidmcp_pending_logins')).to.equal(0);
      expect(sampleValue(samples, 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'success' })).to.equal(1);
      expect(sampleValue(samples, 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'bad_state' })).to.equal(2);
      expect(sampleValue(samples, 'fluidmcp_login_outcomes_total', { package: 'mailbox', outcome: 'provider_error' })).to.equal(1);
      expect(sampleValue(samples, 'fluidmcp_server_processes', { package: 'mailbox' })).to.equal(1);
      expect(sampleValue(samples, 'fluidmcp_call_duration_seconds_count', { package: 'mailbox', outcome: 'ok' })).to.equal(1);
      expect(sampleValue(samples, 'fluidmcp_http_requests_total', { package: 'mailbox', route: '/:name/auth/callback', method: 'GET', status: '400' })).to.equal(3);
      for (const secret of [token, state, 'forged-state-value', new URL(callback).searchParams.get('code')!]) expect(scraped.text).not.to.contain(secret);
    });
  });

  it('keeps its registry to itself: two kernels in one process, and nothing in prom-client\'s global registry', async () => {
    const kernels = [0, 1].map(() => createKernel({ port: 0, logger: pino({ level: 'silent' }) }).use(metricsPrometheus()));
    try {
      for (const k of kernels) await k.start();
      for (const k of kernels) {
        const text = await (await fetch(`http://127.0.0.1:${k.address().port}/metrics`)).text();
        expect(text).to.contain('fluidmcp_sse_streams_open 0');
      }
      expect((await globalRegistry.metrics())).not.to.contain('fluidmcp_');
    } finally {
      await Promise.all(kernels.map((k) => k.stop()));
    }
  });

  it('serves another path when told, and a listener it adds never breaks the emitter', async () => {
    const seen: string[] = [];
    const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) })
      .use(metricsPrometheus({ path: '/internal/metrics', defaultMetrics: false }))
      .use(definePlugin({ name: 'poker', register: (api) => api.addHook('onReady', () => {
        // an event for a package nobody configured: counted under a fixed label, not the name
        api.events.emit('upstream.started', { server: 'not-configured' });
        seen.push('emitted');
      }) }));
    await kernel.start();
    try {
      const { port } = kernel.address();
      expect((await request(port, { path: '/metrics' })).status).to.equal(404);
      const text = (await request(port, { path: '/internal/metrics' })).text;
      expect(seen).to.deep.equal(['emitted']);
      expect(text).to.contain('fluidmcp_server_starts_total{package="(unknown)"} 1');
      expect(text).not.to.contain('not-configured');
    } finally {
      await kernel.stop();
    }
  });
});
