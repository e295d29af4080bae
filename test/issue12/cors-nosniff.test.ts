import { expect } from 'chai';
import { connect } from 'node:net';
import { authOAuth2Pkce, proxyJsonRpc, transportSse, transportStdio } from '../../index.js';
import { everythingEntry, startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, type Answer } from '../helpers/request.js';

const INSPECTOR = 'http://localhost:6274';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'browser', version: '1' } } };
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** The comma-separated names of a header, lower-cased. */
const names = (answer: Answer, header: string): string[] => String(answer.headers[header] ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

/**
 * Issue 12, items 3 and 6: CORS for allowed origins on every route a browser uses (preflights too), on
 * success and error answers; a foreign origin still 403; `nosniff` on every answer; request and provider
 * text escaped where JSON echoes it.
 */
describe('issue 12: CORS, nosniff and escaped echoes', function () {
  this.timeout(30_000);
  let gw: TestGateway;
  let port: number;

  before(async () => {
    gw = await startGateway(
      {
        everything: everythingEntry(),
        gmail: {
          ...everythingEntry(),
          auth: {
            type: 'oauth2',
            flow: 'pkce',
            authorization_url: 'https://accounts.example/authorize',
            // no provider is reachable from the tests: its tokens are knowingly accepted unverified
            validate: 'none',
            token_url: 'https://accounts.example/token',
            scopes: ['mail.read'],
            client_id_env: 'GMAIL_CLIENT_ID',
            env_var_name: 'GMAIL_ACCESS_TOKEN',
          },
        },
      },
      {
        kernel: { allowedOrigins: ['https://app.example'] },
        plugins: [transportStdio(), proxyJsonRpc(), transportSse(), authOAuth2Pkce({ env: { GMAIL_CLIENT_ID: 'gmail-client' } })],
      },
    );
    port = gw.kernel.address().port;
  });
  after(() => gw?.stop());

  const expectCors = (answer: Answer, origin: string): void => {
    expect(answer.headers['access-control-allow-origin'], `${answer.status} ${answer.text}`).to.equal(origin);
    expect(names(answer, 'vary')).to.include('origin');
    expect(names(answer, 'access-control-expose-headers')).to.include.members(['mcp-session-id', 'mcp-protocol-version', 'www-authenticate']);
  };

  describe('CORS', () => {
    it('answers the Inspector\'s preflight on /everything/mcp with 204 and every header a browser client needs', async () => {
      const res = await request(port, {
        method: 'OPTIONS',
        path: '/everything/mcp',
        headers: { origin: INSPECTOR, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, mcp-session-id, mcp-protocol-version, authorization' },
      });
      expect(res.status).to.equal(204);
      expect(res.headers['access-control-allow-origin']).to.equal(INSPECTOR);
      expect(names(res, 'vary')).to.include('origin');
      expect(names(res, 'access-control-allow-methods')).to.include.members(['get', 'post', 'delete', 'options']);
      expect(names(res, 'access-control-allow-headers')).to.include.members([
        'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'authorization', 'mcp-method', 'mcp-name',
      ]);
      expect(res.headers['x-content-type-options']).to.equal('nosniff');
    });

    it('answers preflights on the legacy SSE routes, the auth routes and /health, with --allowed-origin too', async () => {
      for (const [path, method, origin] of [
        ['/everything/sse', 'GET', INSPECTOR],
        ['/everything/messages', 'POST', 'https://app.example'],
        ['/gmail/auth/refresh', 'POST', INSPECTOR],
        ['/health', 'GET', 'http://127.0.0.1:3000'],
      ] as const) {
        const res = await request(port, { method: 'OPTIONS', path, headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' } });
        expect(res.status, path).to.equal(204);
        expect(res.headers['access-control-allow-origin'], path).to.equal(origin);
        expect(names(res, 'access-control-allow-methods'), path).to.include(method.toLowerCase());
      }
    });

    it('lets the browser read Mcp-Session-Id on a successful initialize, and carries CORS on error answers', async () => {
      const ok = await request(port, { method: 'POST', path: '/everything/mcp', headers: { ...MCP_HEADERS, origin: INSPECTOR }, body: JSON.stringify(INIT) });
      expect(ok.status).to.equal(200);
      expect(ok.headers['mcp-session-id']).to.be.a('string');
      expectCors(ok, INSPECTOR);
      // errors: an unknown session (404), no Bearer on a guarded server (401 with WWW-Authenticate), no route (404), a bad method (405)
      const unknownSession = await request(port, { method: 'POST', path: '/everything/mcp', headers: { ...MCP_HEADERS, origin: INSPECTOR, 'mcp-session-id': 'nope' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
      expect(unknownSession.status).to.equal(404);
      expectCors(unknownSession, INSPECTOR);
      const unauthorized = await request(port, { method: 'POST', path: '/gmail/mcp', headers: { ...MCP_HEADERS, origin: INSPECTOR }, body: JSON.stringify(INIT) });
      expect(unauthorized.status).to.equal(401);
      expect(unauthorized.headers['www-authenticate']).to.be.a('string');
      expectCors(unauthorized, INSPECTOR);
      const noRoute = await request(port, { path: '/nowhere', headers: { origin: INSPECTOR } });
      expect(noRoute.status).to.equal(404);
      expect(noRoute.headers['access-control-allow-origin']).to.equal(INSPECTOR);
      const badMethod = await request(port, { method: 'PUT', path: '/everything/mcp', headers: { origin: INSPECTOR } });
      expect(badMethod.status).to.equal(405);
      expectCors(badMethod, INSPECTOR);
    });

    it('still refuses a foreign origin with 403 and no CORS headers, preflight or not', async () => {
      for (const method of ['OPTIONS', 'POST']) {
        const res = await request(port, {
          method,
          path: '/everything/mcp',
          headers: { ...MCP_HEADERS, origin: 'https://evil.example', 'access-control-request-method': 'POST' },
          body: method === 'POST' ? JSON.stringify(INIT) : undefined,
        });
        expect(res.status, method).to.equal(403);
        expect(res.headers['access-control-allow-origin'], method).to.equal(undefined);
        expect(res.headers['x-content-type-options']).to.equal('nosniff');
      }
    });
  });

  describe('nosniff and escaping', () => {
    it('escapes a provider\'s error_description on the callback: <b>nope</b> is \\u003cb\\u003enope\\u003c/b\\u003e', async () => {
      const login = await request(port, { path: '/gmail/auth/login' });
      expect(login.status).to.equal(302);
      const state = new URL(String(login.headers.location)).searchParams.get('state')!;
      const res = await request(port, { path: `/gmail/auth/callback?error=access_denied&error_description=${encodeURIComponent('<b>nope</b> & more')}&state=${state}` });
      expect(res.status).to.equal(400);
      expect(res.text).to.not.match(/[<>&]/);
      expect(res.text).to.contain('\\u003cb\\u003enope\\u003c/b\\u003e \\u0026 more');
      expect(res.json<{ error: { message: string } }>().error.message).to.contain('<b>nope</b> & more');
      expect(res.headers['x-content-type-options']).to.equal('nosniff');
    });

    it('escapes request text echoed in errors (a path) and a server\'s answer echoing a tool argument', async () => {
      const notFound = await request(port, { path: '/%3Cscript%3E/x/y/z' });
      expect(notFound.status).to.equal(404);
      expect(notFound.text).to.not.match(/[<>]/);
      const unknownServer = await request(port, { path: '/%3Cimg%20src%3Dx%3E/auth/login' });
      expect(unknownServer.text).to.not.match(/[<>]/);
      expect(unknownServer.json<{ error: { message: string } }>().error.message).to.contain('<img src=x>');
      const echo = await request(port, {
        method: 'POST',
        path: '/everything/mcp',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: '<script>alert(1)</script>&' } } }),
      });
      expect(echo.status).to.equal(200);
      expect(echo.text).to.contain('\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\u0026');
      expect(JSON.stringify(echo.json())).to.contain('<script>alert(1)</script>&');
    });

    it('sends X-Content-Type-Options: nosniff on every answer: /health, /mcp, 202, 204, 404, 405, 413 and a malformed request', async () => {
      const answers: [string, Answer][] = [
        ['/health', await request(port, { path: '/health' })],
        ['POST /mcp', await request(port, { method: 'POST', path: '/everything/mcp', headers: MCP_HEADERS, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })],
        ['notification 202', await request(port, { method: 'POST', path: '/everything/mcp', headers: MCP_HEADERS, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })],
        ['404', await request(port, { path: '/nowhere' })],
        ['405', await request(port, { method: 'PUT', path: '/health' })],
        ['413', await request(port, { method: 'POST', path: '/everything/mcp', headers: { ...MCP_HEADERS, 'content-length': String(5 * 1024 * 1024) }, body: Buffer.alloc(5 * 1024 * 1024, 32) })],
        ['OPTIONS', await request(port, { method: 'OPTIONS', path: '/health' })],
      ];
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
        let text = '';
        socket.setEncoding('utf8').on('data', (s: string) => (text += s)).on('close', () => resolve(text)).on('error', reject);
      });
      expect(raw).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(raw.toLowerCase()).to.contain('\r\nx-content-type-options: nosniff\r\n');
      for (const [what, answer] of answers) expect(answer.headers['x-content-type-options'], `${what}: ${answer.status}`).to.equal('nosniff');
      expect(answers.map(([, a]) => a.status)).to.deep.equal([200, 200, 202, 404, 405, 413, 204]);
    });
  });
});
