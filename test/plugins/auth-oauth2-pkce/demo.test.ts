import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { postJson, startGateway } from '../../helpers/gateway.js';
import { leakedProcesses } from '../../helpers/leaks.js';
import { loginThroughProvider } from '../../helpers/oidc.js';
import { repoRoot } from '../../helpers/paths.js';
import { closedPort } from './pkce-gateway.js';

const demoScript = join(repoRoot, 'dist', 'examples', 'demo', 'start.js');

/** Resolves with the exit code, or rejects after `ms`. */
function exitOf(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not exit within ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('auth-oauth2-pkce: the offline demo (npm start)', function () {
  let demo: ChildProcess | undefined;
  let out = '';

  after(async () => {
    if (demo && demo.exitCode === null) {
      demo.kill('SIGTERM');
      await exitOf(demo, 20_000).catch(() => demo?.kill('SIGKILL'));
    }
  });

  it('starts the provider and the gateway, lets a user sign in and call the mailbox, and stops cleanly on SIGTERM', async () => {
    const gatewayPort = await closedPort();
    const authPort = await closedPort();
    demo = spawn(process.execPath, [demoScript], {
      cwd: repoRoot,
      env: { ...process.env, DEMO_PORT: String(gatewayPort), DEMO_AUTH_PORT: String(authPort), DEMO_PASSWORD: 'demo-pass', FMCP_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    demo.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not get ready within 20 s:\n${out}`)), 20_000);
      const check = (): void => {
        if (out.includes('Press Ctrl-C to stop.')) {
          clearTimeout(timer);
          resolve();
        }
      };
      demo!.stdout!.on('data', check);
      demo!.once('exit', () => reject(new Error(`the demo exited early:\n${out}`)));
    });

    const gateway = `http://localhost:${gatewayPort}`;
    expect(out).to.contain(`Added mailbox endpoints with OAuth support\n  Login: ${gateway}/mailbox/auth/login\n`);
    const provider = `http://127.0.0.1:${authPort}`;
    expect(out).to.contain(`\n  Tokens verified at the provider's userinfo endpoint ${provider}/me (found in ${provider}/.well-known/openid-configuration)\n`);
    expect(out).to.contain('Added everything endpoints\n');
    expect(out).to.contain('password "demo-pass"');
    expect(out).to.contain(`curl -X POST ${gateway}/mailbox/mcp`);
    expect(out).to.not.contain('oidc-provider WARNING');

    const base = `http://127.0.0.1:${gatewayPort}`;
    const wrong = await loginThroughProvider(`${base}/mailbox/auth/login`, { password: 'nope' }).then(
      () => 'signed in',
      (err: Error) => err.message,
    );
    expect(wrong).to.contain('Wrong password');

    const callback = await loginThroughProvider(`${base}/mailbox/auth/login`, { login: 'alice', password: 'demo-pass' });
    const login = await fetch(callback);
    const body = (await login.json()) as { token_data: { access_token: string } };
    expect(login.status).to.equal(200);
    const call = await postJson(`${base}/mailbox/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, {
      authorization: `Bearer ${body.token_data.access_token}`,
    });
    expect(call.status, call.text).to.equal(200);
    expect(JSON.parse((call.json as { result: { content: { text: string }[] } }).result.content[0]!.text).user).to.equal('alice');
    const madeUp = await postJson(`${base}/mailbox/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { authorization: 'Bearer made-up-token' });
    expect(madeUp.status).to.equal(401);
    expect(madeUp.headers.get('www-authenticate')).to.match(/^Bearer realm="mailbox", error="invalid_token", resource_metadata="http:\/\/[^"]+\/\.well-known\/oauth-protected-resource\/mailbox\/mcp", scope="openid profile mail\.read"$/);

    demo.kill('SIGTERM');
    expect(await exitOf(demo, 20_000)).to.equal(0);
    for (const url of [`${base}/health`, `http://127.0.0.1:${authPort}/.well-known/openid-configuration`]) {
      const refused = await fetch(url).then(
        () => 'answered',
        () => 'refused',
      );
      expect(refused, url).to.equal('refused');
    }
  });

  it('says the port is in use when another FluidMCP holds DEMO_PORT, prints no banner, exits 1 and leaves nothing running', async () => {
    // a real FluidMCP gateway (no servers, so no process of its own) that answers /health 200 on the port the demo is told to use
    const other = await startGateway({});
    try {
      const gatewayPort = Number(new URL(other.base).port);
      const authPort = await closedPort();
      let text = '';
      const busy = spawn(process.execPath, [demoScript], {
        cwd: repoRoot,
        env: { ...process.env, DEMO_PORT: String(gatewayPort), DEMO_AUTH_PORT: String(authPort), FMCP_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      busy.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
      busy.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
      const code = await exitOf(busy, 60_000).catch((err: Error) => {
        busy.kill('SIGKILL');
        throw new Error(`${err.message}:\n${text}`);
      });

      expect(code, text).to.equal(1);
      expect(text).to.not.contain('FluidMCP demo is running');
      expect(text).to.not.contain('Press Ctrl-C to stop.');
      expect(text).to.not.contain('FluidMCP gateway ready at');
      expect(text).to.contain(`fluidmcp: Cannot listen on 127.0.0.1:${gatewayPort}: the port is already in use (choose another with --port)\n`);
      expect(text).to.contain(
        'demo: the gateway exited (code 1); the authorization server is stopped too (to use another gateway port, run DEMO_PORT=<port> npm start)\n',
      );
      const auth = await fetch(`http://127.0.0.1:${authPort}/.well-known/openid-configuration`).then(
        () => 'answered',
        () => 'refused',
      );
      expect(auth).to.equal('refused');
      // the other gateway is untouched, and the demo left no process of its own behind
      expect((await fetch(`${other.base}/health`)).status).to.equal(200);
      expect(leakedProcesses().map((p) => p.cmdline)).to.deep.equal([]);
    } finally {
      await other.stop();
    }
  });
});
