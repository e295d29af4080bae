import { expect } from 'chai';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import {
  authOAuth2Pkce,
  createKernel,
  parseConfig,
  proxyJsonRpc,
  transportStdio,
  type Kernel,
} from '../../../index.js';
import { repoRoot } from '../../helpers/paths.js';
import { errorMessage, get, mailboxEntry, RecordingStore, storePlugin } from './pkce-gateway.js';

interface Received {
  headers: IncomingHttpHeaders;
  form: Record<string, string>;
}

/** A token endpoint that records each request and answers what the test sets. */
class TokenEndpoint {
  readonly received: Received[] = [];
  answer: { status: number; type: string; body: string } = {
    status: 200,
    type: 'application/json',
    body: JSON.stringify({ access_token: 'at-123', token_type: 'Bearer', expires_in: 60, scope: 'read' }),
  };
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.received.push({ headers: req.headers, form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString())) });
      res.writeHead(this.answer.status, { 'content-type': this.answer.type }).end(this.answer.body);
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }
  close(): Promise<void> {
    return new Promise((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

describe('auth-oauth2-pkce: the token request', () => {
  const endpoint = new TokenEndpoint();
  const store = new RecordingStore();
  let kernel: Kernel;
  let base: string;

  before(async () => {
    await endpoint.start();
    const auth = (extra: Record<string, unknown>) => ({
      authorization_url: 'https://provider.example/authorize',
      token_url: endpoint.url,
      scopes: ['read'],
      client_id_env: 'APP_ID',
      env_var_name: 'APP_TOKEN',
      validate: 'none',
      ...extra,
    });
    const config = parseConfig(
      {
        mcpServers: {
          pub: mailboxEntry(auth({})),
          post: mailboxEntry(auth({ client_secret_env: 'APP_SECRET' })),
          basic: mailboxEntry(auth({ client_secret_env: 'APP_SECRET', token_endpoint_auth_method: 'client_secret_basic' })),
          nosecret: mailboxEntry(auth({ client_secret_env: 'MISSING_SECRET' })),
        },
      },
      `${repoRoot}/token-test.json`,
      repoRoot,
    );
    kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }), servers: config.servers });
    kernel.use(transportStdio()).use(proxyJsonRpc()).use(storePlugin(store));
    kernel.use(authOAuth2Pkce({ env: { APP_ID: 'app id/ü', APP_SECRET: 's3cr:et&+' } }));
    await kernel.start();
    base = `http://127.0.0.1:${kernel.address().port}`;
  });

  after(async () => {
    await kernel?.stop();
    await endpoint.close();
  });

  /** Runs login then callback with `code`; returns the callback's answer and what the endpoint received. */
  async function exchange(name: string, code = 'the-code'): Promise<{ status: number; body: Record<string, unknown>; received: Received; verifier: string }> {
    const login = await get(`${base}/${name}/auth/login`);
    const state = new URL(login.headers.get('location')!).searchParams.get('state')!;
    const verifier = String(store.puts.find((p) => p.key === state)!.value.verifier);
    const res = await get(`${base}/${name}/auth/callback?state=${state}&code=${code}`);
    return { status: res.status, body: res.body, received: endpoint.received.at(-1)!, verifier };
  }

  it('sends a form-encoded request with grant_type, code, redirect_uri, code_verifier and client_id (public client)', async () => {
    const { status, received, verifier } = await exchange('pub');
    expect(status).to.equal(200);
    expect(received.headers['content-type']).to.equal('application/x-www-form-urlencoded');
    expect(received.headers.accept).to.equal('application/json');
    expect(received.headers.authorization).to.equal(undefined);
    expect(received.form).to.deep.equal({
      grant_type: 'authorization_code',
      code: 'the-code',
      redirect_uri: `http://localhost:${kernel.address().port}/pub/auth/callback`,
      code_verifier: verifier,
      client_id: 'app id/ü',
    });
  });

  it('sends the secret in the body by default (client_secret_post)', async () => {
    const { received } = await exchange('post');
    expect(received.form.client_secret).to.equal('s3cr:et&+');
    expect(received.form.client_id).to.equal('app id/ü');
    expect(received.headers.authorization).to.equal(undefined);
  });

  it('sends the secret as HTTP Basic with form-encoded parts (client_secret_basic), never in the body', async () => {
    const { received } = await exchange('basic');
    expect(received.form.client_secret).to.equal(undefined);
    const [id, secret] = Buffer.from(String(received.headers.authorization).replace(/^Basic /, ''), 'base64').toString().split(':');
    expect(id).to.equal('app+id%2F%C3%BC');
    expect(secret).to.equal('s3cr%3Aet%26%2B');
    expect(decodeURIComponent(secret!.replace(/\+/g, ' '))).to.equal('s3cr:et&+');
  });

  it('treats a client whose secret variable is unset as public', async () => {
    const { received } = await exchange('nosecret');
    expect(received.form.client_secret).to.equal(undefined);
    expect(received.headers.authorization).to.equal(undefined);
  });

  it('passes the whole provider answer through as token_data, and reads form-encoded answers too', async () => {
    endpoint.answer = { status: 200, type: 'application/x-www-form-urlencoded', body: 'access_token=gho_abc&token_type=bearer&scope=repo' };
    try {
      const { status, body } = await exchange('pub');
      expect(status).to.equal(200);
      expect(body.token_data).to.deep.equal({ access_token: 'gho_abc', token_type: 'bearer', scope: 'repo' });
    } finally {
      endpoint.answer = { status: 200, type: 'application/json', body: JSON.stringify({ access_token: 'at-123', token_type: 'Bearer', extra: { nested: true } }) };
    }
    const { body } = await exchange('pub');
    expect(body.token_data).to.deep.equal({ access_token: 'at-123', token_type: 'Bearer', extra: { nested: true } });
  });

  it('explains a provider that refuses the client, fails, or answers without a token', async () => {
    const cases: [typeof endpoint.answer, number, string][] = [
      [{ status: 401, type: 'application/json', body: '{"error":"invalid_client","error_description":"bad secret"}' }, 502, 'refused the client (invalid_client: bad secret). Check APP_ID and APP_SECRET'],
      [{ status: 503, type: 'text/html', body: '<h1>down</h1>' }, 502, 'answered HTTP 503 without an OAuth error'],
      [{ status: 500, type: 'application/json', body: '{"error":"server_error"}' }, 502, 'failed (HTTP 500, server_error). Try again later'],
      [{ status: 200, type: 'application/json', body: '{"token_type":"Bearer"}' }, 502, 'answered 200 without an access_token'],
      [{ status: 400, type: 'application/json', body: '{"error":"invalid_grant","error_description":"code expired"}' }, 400, 'The provider refused the token request for "post" (invalid_grant: code expired). Go to'],
    ];
    try {
      for (const [answer, status, text] of cases) {
        endpoint.answer = answer;
        const res = await exchange('post');
        expect(res.status, text).to.equal(status);
        expect(errorMessage(res.body)).to.contain(text);
      }
    } finally {
      endpoint.answer = { status: 200, type: 'application/json', body: '{"access_token":"at-123"}' };
    }
  });
});
