import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { authOAuth2Pkce, createKernel, definePlugin, parseConfig, sendJson, transportStdio, type Kernel } from '../../../index.js';
import { repoRoot } from '../../helpers/paths.js';
import { errorMessage, get, mailboxEntry } from './pkce-gateway.js';

describe('auth-oauth2-pkce: validate_url', () => {
  let userinfo: Server;
  let seen: string[] = [];
  let kernel: Kernel;
  let base: string;

  before(async () => {
    // a userinfo endpoint: "good-*" tokens belong to someone, "down" breaks it, anything else is refused
    userinfo = createServer((req, res) => {
      const token = String(req.headers.authorization).replace(/^Bearer /, '');
      seen.push(token);
      if (token === 'down') return void res.writeHead(500).end();
      if (!token.startsWith('good-')) return void res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sub: '1234', preferred_username: token.slice(5) })), 30);
    });
    await new Promise<void>((r) => userinfo.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(userinfo.address() as AddressInfo).port}/me`;
    const auth = { authorization_url: 'https://p.example/a', token_url: 'https://p.example/t', client_id_env: 'ID', env_var_name: 'TOKEN', validate_url: url };
    const config = parseConfig({ mcpServers: { box: mailboxEntry(auth) } }, `${repoRoot}/check.json`, repoRoot);
    // a guarded route that shows the identity the strategy made, without starting any server
    const probe = definePlugin({
      name: 'identity-probe',
      register: (api) =>
        api.route({ method: 'GET', path: '/:name/identity', guard: 'name', handler: (ctx) => sendJson(ctx.res, 200, { key: ctx.identity.key, subject: ctx.identity.subject, env: Object.keys(ctx.identity.env) }) }),
    });
    kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }), servers: config.servers });
    kernel.use(transportStdio()).use(probe).use(authOAuth2Pkce({ env: { ID: 'x' }, validationCacheMs: 60_000 }));
    await kernel.start();
    base = `http://127.0.0.1:${kernel.address().port}`;
  });

  after(async () => {
    await kernel?.stop();
    await new Promise<void>((r) => {
      userinfo.close(() => r());
      userinfo.closeAllConnections();
    });
  });

  beforeEach(() => (seen = []));

  const ask = (token: string) => get(`${base}/box/identity`, { authorization: `Bearer ${token}` });

  it('checks a token once, even under concurrent calls, and names the identity after the provider\'s answer', async () => {
    const answers = await Promise.all([ask('good-alice'), ask('good-alice'), ask('good-alice')]);
    for (const a of answers) {
      expect(a.status).to.equal(200);
      expect(a.body).to.deep.include({ subject: 'alice', env: ['TOKEN'] });
      expect(a.body.key).to.match(/^[0-9a-f]{64}$/);
    }
    expect((await ask('good-alice')).status).to.equal(200);
    expect(seen).to.deep.equal(['good-alice']);
    await ask('good-bob');
    expect(seen).to.deep.equal(['good-alice', 'good-bob']);
  });

  it('refuses a token the provider rejects, and remembers the verdict', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await ask('stolen');
      expect(res.status).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="box", error="invalid_token"');
    }
    expect(seen).to.deep.equal(['stolen']);
  });

  it('answers 503 when the provider cannot say, and asks again next time', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await ask('down');
      expect(res.status).to.equal(503);
      expect(errorMessage(res.body)).to.match(/^Cannot check the credentials sent to "box": auth\.validate_url http:\/\/127\.0\.0\.1:\d+\/me answered HTTP 500 while checking a token\. Try again later$/);
    }
    expect(seen).to.deep.equal(['down', 'down']);
  });
});
