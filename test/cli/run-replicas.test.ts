import { expect } from 'chai';
import { closedPort } from '../plugins/auth-oauth2-pkce/pkce-gateway.js';
import { errorLines, everythingMetadata, RunningCli, runCli, suiteTempTree, type CliResult } from '../helpers/cli.js';
import { skipWithout, startRedis, type RedisServer } from '../helpers/services.js';

function oneErrorLine(result: CliResult): string {
  const lines = errorLines(result.stderr);
  expect(lines, `stderr: ${result.stderr}`).to.have.length(1);
  expect(result.stderr).to.not.match(/^\s+at /m);
  return lines[0]!;
}

describe('cli: fluidmcp run --state-store, --replica-id, --metrics', function () {
  this.timeout(30_000);
  const tree = suiteTempTree();
  let config = '';
  before(() => (config = tree.write('config.json', everythingMetadata(['everything']))));
  const running: RunningCli[] = [];

  after(async () => {
    await Promise.all(running.map((c) => c.stop()));
  });

  const cases: [string, string[], string][] = [
    ['a store that is not Redis', ['--state-store', 'http://cache:6379'], 'fluidmcp: --state-store must be redis://host:port/db, rediss://host:port/db or memory, got "http://cache:6379" (see fluidmcp --help)'],
    ['a store URL without a host, hiding its password', ['--state-store', 'redis://:pw-s3cret@/0'], 'fluidmcp: --state-store must be redis://host:port/db, rediss://host:port/db or memory, got "redis://:***@/0" (see fluidmcp --help)'],
    ['a replica id with a dot', ['--replica-id', 'gw.1'], 'fluidmcp: --replica-id must be 1-32 letters, digits, "-" or "_" (it starts every session id), got "gw.1" (see fluidmcp --help)'],
    ['a replica URL that is not http(s)', ['--replica-id', 'gw1', '--replica-url', 'ftp://10.0.0.7'], 'fluidmcp: --replica-url must be an http(s) URL such as http://10.0.0.7:8101, got "ftp://10.0.0.7"'],
    ['a replica URL without a replica id', ['--replica-url', 'http://10.0.0.7:8101'], 'fluidmcp: --replica-url needs --replica-id: it is where the other replicas reach this one'],
    ['a replica URL without a shared store', ['--replica-id', 'gw1', '--replica-url', 'http://10.0.0.7:8101'], 'fluidmcp: --replica-url needs a shared store (--state-store redis://host:port/db): replicas find each other there'],
  ];
  for (const [what, args, line] of cases) {
    it(`refuses ${what} with exit code 2 and one line`, async () => {
      const result = await runCli(['run', '--file', config, ...args]);
      expect(result.code).to.equal(2);
      expect(oneErrorLine(result).replace(/ \(see fluidmcp --help\)$/, '')).to.equal(line.replace(/ \(see fluidmcp --help\)$/, ''));
    });
  }

  it('the dry run refuses a shared store with an OAuth package and no token key, as the start does', async () => {
    const oauth = tree.write('oauth.json', {
      mcpServers: {
        mail: {
          ...everythingMetadata(['mail']).mcpServers.mail,
          auth: { type: 'oauth2', flow: 'pkce', authorization_url: 'https://accounts.example/authorize', token_url: 'https://accounts.example/token', validate: 'none', client_id_env: 'MAIL_CLIENT_ID', env_var_name: 'MAIL_TOKEN' },
        },
      },
    });
    const env = { FMCP_TOKEN_KEYS: '' };
    const result = await runCli(['run', '--file', oauth, '--state-store', 'redis://127.0.0.1:6390/0', '--replica-id', 'gw1'], { env });
    expect(result.code).to.equal(2);
    expect(result.stdout).to.not.contain('Configuration is valid');
    expect(oneErrorLine(result)).to.equal(
      'fluidmcp: --token-key / FMCP_TOKEN_KEYS: not given: a shared pending-state store (--state-store) keeps each login\'s PKCE verifier, which the gateway encrypts with its token key first: give every replica the same key with --token-key or FMCP_TOKEN_KEYS (make one with: openssl rand -hex 32)',
    );
    // with a key, the same dry run is valid
    const keyed = await runCli(['run', '--file', oauth, '--state-store', 'redis://127.0.0.1:6390/0', '--replica-id', 'gw1'], { env: { FMCP_TOKEN_KEYS: 'a'.repeat(64) } });
    expect(keyed.code, keyed.stderr).to.equal(0);
    expect(keyed.stdout).to.contain('Configuration is valid');
  });

  it('refuses a "stateStore" in a config file that is not Redis, naming the file', async () => {
    const file = tree.write('ftp-store.json', { ...everythingMetadata(['everything']), stateStore: 'ftp://cache/0' });
    const result = await runCli(['run', '--file', file]);
    expect(result.code).to.equal(2);
    expect(oneErrorLine(result)).to.equal(`fluidmcp: "stateStore" in ${file} must be redis://host:port/db, rediss://host:port/db or memory, got "ftp://cache/0"`);
  });

  it('does not start when Redis cannot be reached: exit code 1, one line naming the URL without its password', async () => {
    const port = await closedPort();
    const result = await runCli(['run', '--file', config, '--start-server', '--port', '0', '--state-store', `redis://:pw-s3cret@127.0.0.1:${port}/2`]);
    expect(result.code).to.equal(1);
    const line = oneErrorLine(result);
    expect(line).to.equal(
      `fluidmcp: The pending-state store is unavailable: cannot use Redis at redis://:***@127.0.0.1:${port}/2: connect ECONNREFUSED 127.0.0.1:${port}: start Redis there or correct --state-store ("stateStore" in a config file)`,
    );
    expect(result.stdout + result.stderr).not.to.contain('pw-s3cret');
  });

  describe('with a real redis-server', () => {
    let redis: RedisServer;
    before(async function () {
      skipWithout(this, 'redis-server');
      redis = await startRedis();
    });
    after(() => redis?.stop());

    it('takes "stateStore" from the config file, says where pending logins are kept and where metrics are, and prefixes session ids', async () => {
      const file = tree.write('redis-store.json', { ...everythingMetadata(['everything']), stateStore: redis.url(1) });
      const cli = new RunningCli(['run', '--file', file, '--start-server', '--port', '0', '--metrics', '--replica-id', 'gw-1']);
      running.push(cli);
      const base = await cli.ready();
      expect(cli.stdout).to.contain(`Pending logins are kept in Redis at ${redis.url(1)}\n`);
      expect(cli.stdout).to.contain(`Metrics: ${base}/metrics\n`);
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).to.equal(200);
      expect(await metrics.text()).to.contain('fluidmcp_server_processes{package="everything"} 1');
      const init = await fetch(`${base}/everything/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
      });
      expect(init.status).to.equal(200);
      expect(init.headers.get('mcp-session-id')).to.match(/^gw-1\.[0-9a-f]{32}$/);
      await init.text();
      const stopped = await cli.stop();
      expect(stopped.code).to.equal(0);
    });

    it('lets --state-store memory override the file\'s "stateStore", and serves no /metrics without --metrics', async () => {
      const file = tree.write('unreachable-store.json', { ...everythingMetadata(['everything']), stateStore: `redis://127.0.0.1:${await closedPort()}/0` });
      const cli = new RunningCli(['run', '--file', file, '--start-server', '--port', '0', '--state-store', 'memory']);
      running.push(cli);
      const base = await cli.ready();
      expect(cli.stdout).not.to.contain('Redis');
      expect((await fetch(`${base}/metrics`)).status).to.equal(404);
      await cli.stop();
    });
  });
});
