import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';
import { errorLines, processesWith, RunningCli, suiteTempTree } from '../../helpers/cli.js';
import { startCcProvider, type CcProvider } from './cc-provider.js';
import { getEnv } from './get-env.js';

const apiKeyPlugin = join(repoRoot, 'dist', 'examples', 'plugins', 'api-key', 'index.js');
const ccPlugin = join(repoRoot, 'dist', 'examples', 'plugins', 'oauth2-client-credentials', 'index.js');

const ALICE_KEY = 'alice-cli-key-5be0f3a17c9d';
const BOB_KEY = 'bob-cli-key-0e6a92d4c1f8';

const envServer = join(repoRoot, 'test', 'examples', 'plugins', 'env-server.mjs');

/** A stdio server with a get-env tool, tagged with `marker` so the test can see its processes are gone. */
const envEntry = (marker: string, auth: Record<string, unknown>): Record<string, unknown> => ({ command: process.execPath, args: [envServer, marker], auth });

describe('examples/plugins through a real `fluidmcp run`', function () {
  const tree = suiteTempTree();
  const running: RunningCli[] = [];
  const marker = `fmcp-example-plugins-${randomBytes(4).toString('hex')}`;

  after(async () => {
    await Promise.all(running.map((cli) => cli.stop()));
  });

  /** Starts `fluidmcp run <args> --start-server --port 0` and returns its printed URL. */
  async function run(args: string[], env: Record<string, string>, cwd = tree.root): Promise<{ cli: RunningCli; base: string }> {
    const cli = new RunningCli(['run', ...args, '--start-server', '--port', '0'], { cwd, env });
    running.push(cli);
    return { cli, base: await cli.ready() };
  }

  /** SIGTERM: exit 0, and no server process left behind. */
  async function stop(cli: RunningCli): Promise<string> {
    const result = await cli.stop();
    expect(result.code, result.stderr).to.equal(0);
    expect(processesWith(marker)).to.deep.equal([]);
    return result.stdout + result.stderr;
  }

  describe('api-key', () => {
    const env = { CALC_KEYS: `alice:${ALICE_KEY},bob:${BOB_KEY}` };

    async function checkAuth(base: string): Promise<void> {
      const none = await getEnv(base, 'calc');
      expect(none.status).to.equal(401);
      expect(none.error!.message).to.equal('"calc" needs an API key: send it as "X-API-Key: <key>" or "Authorization: Bearer <key>"');
      const wrong = await getEnv(base, 'calc', { 'x-api-key': BOB_KEY.replace('bob', 'eve') });
      expect(wrong.status).to.equal(401);
      expect(wrong.error!.message).to.equal('The API key sent to "calc" is not valid: check it, or ask the gateway\'s operator for one');
      const alice = await getEnv(base, 'calc', { 'x-api-key': ALICE_KEY });
      expect(alice.status).to.equal(200);
      expect(alice.env!.FMCP_CALLER).to.equal('alice');
      const bob = await getEnv(base, 'calc', { authorization: `Bearer ${BOB_KEY}` });
      expect(bob.env!.FMCP_CALLER).to.equal('bob');
    }

    it('loads with --plugin <path> and guards the server over real HTTP', async () => {
      const config = tree.write('api-key/config.json', { mcpServers: { calc: envEntry(marker, { type: 'api_key', keys_env: 'CALC_KEYS' }) } });
      const { cli, base } = await run(['--file', config, '--plugin', apiKeyPlugin], env);
      expect(cli.stdout).to.include('Added calc endpoints with API key auth\n  Send "X-API-Key: <key>" or "Authorization: Bearer <key>" to /calc/mcp\n');
      await checkAuth(base);
      const output = await stop(cli);
      expect(output).to.not.include(ALICE_KEY).and.not.include(BOB_KEY);
    });

    it('loads from the "plugins" list of an installed package\'s metadata.json, relative to that file', async () => {
      const dir = join(tree.root, 'packages', 'acme', 'calc', '1.0.0');
      tree.write('packages/acme/calc/1.0.0/metadata.json', {
        mcpServers: { calc: envEntry(marker, { type: 'api_key', keys_env: 'CALC_KEYS' }) },
        plugins: [relative(dir, apiKeyPlugin)],
      });
      expect(relative(dir, apiKeyPlugin)).to.match(/^\.\.\//);
      // started from another folder: the path is resolved from the metadata file, not from the cwd
      const { cli, base } = await run(['acme/calc@1.0.0'], { ...env, FMCP_PACKAGES_DIR: join(tree.root, 'packages') }, repoRoot);
      await checkAuth(base);
      await stop(cli);
    });

    it('stops start-up with one line naming the field when the keys are missing', async () => {
      const config = tree.write('api-key/no-keys.json', { mcpServers: { calc: envEntry(marker, { type: 'api_key', keys_env: 'CALC_KEYS' }) } });
      const cli = new RunningCli(['run', '--file', config, '--plugin', apiKeyPlugin, '--start-server', '--port', '0'], { cwd: tree.root, env: { CALC_KEYS: '' } });
      running.push(cli);
      const result = await cli.exited;
      expect(result.code, result.stderr).to.equal(2);
      expect(errorLines(result.stderr)).to.have.length(1);
      expect(errorLines(result.stderr)[0]).to.match(/^fluidmcp: \/.*\/no-keys\.json: mcpServers\.calc\.auth\.keys_env: the environment variable CALC_KEYS is not set: export CALC_KEYS=/);
      expect(processesWith(marker)).to.deep.equal([]);
    });
  });

  describe('oauth2-client-credentials', () => {
    let provider: CcProvider;
    before(async () => {
      provider = await startCcProvider(3600);
    });
    after(() => provider?.close());

    const auth = (): Record<string, unknown> => ({
      type: 'oauth2',
      flow: 'client_credentials',
      token_url: provider.tokenUrl,
      client_id_env: 'REPORTS_CLIENT_ID',
      client_secret_env: 'REPORTS_CLIENT_SECRET',
      env_var_name: 'REPORTS_TOKEN',
      scopes: ['reports.read'],
    });
    const env = (): Record<string, string> => ({ REPORTS_CLIENT_ID: provider.basicClient.clientId, REPORTS_CLIENT_SECRET: provider.basicClient.clientSecret });

    /** Two calls without credentials: one token request, and the server sees a token the provider issued. */
    async function checkToken(base: string): Promise<string> {
      const before = provider.tokenRequests.length;
      const first = await getEnv(base, 'reports');
      expect(first.status, JSON.stringify(first.error)).to.equal(200);
      const token = first.env!.REPORTS_TOKEN!;
      expect(await provider.introspect(token, provider.basicClient)).to.include({ active: true, client_id: provider.basicClient.clientId, scope: 'reports.read' });
      const second = await getEnv(base, 'reports');
      expect(second.env!.REPORTS_TOKEN).to.equal(token);
      expect(provider.tokenRequests.length - before).to.equal(1);
      return token;
    }

    it('loads with --plugin <relative path> and gives the server a token with no login', async () => {
      const config = tree.write('cc/config.json', { mcpServers: { reports: envEntry(marker, auth()) } });
      const { cli, base } = await run(['--file', config, '--plugin', `./${relative(repoRoot, ccPlugin)}`], env(), repoRoot);
      expect(cli.stdout).to.include('Added reports endpoints with OAuth client credentials\n  No login needed: the gateway gets and renews the token itself\n');
      const token = await checkToken(base);
      const output = await stop(cli);
      expect(output).to.not.include(token).and.not.include(provider.basicClient.clientSecret);
    });

    it('loads from the "plugins" list of a --file config, relative to that file', async () => {
      const config = tree.write('cc/nested/config.json', { mcpServers: { reports: envEntry(marker, auth()) }, plugins: [relative(join(tree.root, 'cc', 'nested'), ccPlugin)] });
      const { cli, base } = await run(['--file', config], env(), join(tree.root, 'cc'));
      await checkToken(base);
      await stop(cli);
    });
  });
});
