import { expect } from 'chai';
import { everythingMetadata, RunningCli, tempTree } from '../../helpers/cli.js';
import { request } from '../../helpers/request.js';

const ADMIN = 'cli-admin-token-0123456789';

describe('console: fluidmcp run flags', function () {
  this.timeout(60_000);
  const tree = tempTree({ 'config.json': everythingMetadata(['everything']) });
  after(() => tree.remove());

  async function serve(extra: string[], env: Record<string, string> = {}): Promise<{ cli: RunningCli; port: number }> {
    const cli = new RunningCli(['run', '--file', `${tree.root}/config.json`, '--start-server', '--port', '0', '--log-level', 'warn', ...extra], { env });
    const url = await cli.ready();
    return { cli, port: Number(new URL(url).port) };
  }

  it('serves the console at / by default', async () => {
    const { cli, port } = await serve([]);
    try {
      const page = await request(port, { path: '/' });
      expect(page.status).to.equal(200);
      expect(page.text).to.include('<title>FluidMCP console</title>');
      const servers = await request(port, { path: '/api/servers' });
      expect(servers.json<{ servers: { name: string }[] }>().servers.map((s) => s.name)).to.deep.equal(['everything']);
    } finally {
      await cli.stop();
    }
  });

  it('--no-console turns it off: / and /api are 404', async () => {
    const { cli, port } = await serve(['--no-console']);
    try {
      for (const path of ['/', '/api/servers']) {
        const res = await request(port, { path });
        expect(res.status, path).to.equal(404);
        expect(res.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_NOT_FOUND');
      }
    } finally {
      await cli.stop();
    }
  });

  it('--admin-token: on a non-loopback Host /api without the token is 401, with it 200', async () => {
    const { cli, port } = await serve(['--admin-token', ADMIN, '--allowed-host', 'gateway.example']);
    try {
      const host = { host: 'gateway.example' };
      const without = await request(port, { path: '/api/servers', headers: host });
      expect(without.status).to.equal(401);
      expect(without.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_UNAUTHORIZED');
      const withToken = await request(port, { path: '/api/servers', headers: { ...host, authorization: `Bearer ${ADMIN}` } });
      expect(withToken.status).to.equal(200);
      expect(cli.stdout + cli.stderr).not.to.include(ADMIN);
    } finally {
      await cli.stop();
    }
  });

  it('FMCP_ADMIN_TOKEN works like --admin-token', async () => {
    const { cli, port } = await serve([], { FMCP_ADMIN_TOKEN: ADMIN });
    try {
      expect((await request(port, { path: '/api/servers' })).status).to.equal(401);
      expect((await request(port, { path: '/api/servers', headers: { authorization: `Bearer ${ADMIN}` } })).status).to.equal(200);
    } finally {
      await cli.stop();
    }
  });

  it('a short --admin-token is a usage error', async () => {
    const cli = new RunningCli(['run', '--file', `${tree.root}/config.json`, '--start-server', '--port', '0', '--admin-token', 'short']);
    const result = await cli.exited;
    expect(result.code).to.equal(2);
    expect(result.stderr.trim()).to.equal('fluidmcp: --admin-token must be at least 16 characters: use a random one, such as the output of `openssl rand -hex 32`');
  });
});
