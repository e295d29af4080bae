import { expect } from 'chai';
import { join } from 'node:path';
import { errorLines, runCli, suiteTempTree, type CliResult } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

const apiKeyPlugin = join(repoRoot, 'dist', 'examples', 'plugins', 'api-key', 'index.js');
const server = { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] };

/** The one line a failed run prints (JSON log lines aside). */
function theErrorLine(result: CliResult): string {
  const lines = errorLines(result.stderr);
  expect(lines, `stderr: ${result.stderr}`).to.have.length(1);
  return lines[0]!;
}

describe('cli: the dry run (run without --start-server) checks what the start checks', function () {
  this.timeout(60_000);
  const tree = suiteTempTree();
  const env: Record<string, string | undefined> = { FMCP_DRY_RUN_UNSET: undefined };

  before(() => {
    tree.write('magic.json', { mcpServers: { m: { ...server, auth: { type: 'magic' } } } });
    tree.write('oauth.json', {
      mcpServers: { o: { ...server, auth: { type: 'oauth2', flow: 'pkce', token_url: 'https://p.example/token', validate_url: 'https://p.example/me', client_id_env: 'X_ID', env_var_name: 'TOK' } } },
    });
    tree.write('headers.json', { mcpServers: { r: { url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer ${FMCP_DRY_RUN_UNSET}' } } } });
    tree.write('apikey.json', { mcpServers: { k: { ...server, auth: { type: 'api_key' } } }, plugins: [apiKeyPlugin] });
    tree.write('packages/acme/one/1.0.0/metadata.json', { mcpServers: { same: server } });
    tree.write('packages/acme/two/1.0.0/metadata.json', { mcpServers: { same: server } });
  });

  const cases: { what: string; args: string[]; line: (root: string) => string }[] = [
    {
      what: 'an unknown auth type',
      args: ['--file', 'magic.json'],
      line: (root) => `fluidmcp: ${root}/magic.json: mcpServers.m.auth: no plugin handles auth "magic" (known: oauth2/pkce). Load a plugin that does with --plugin <module> or a "plugins" list in the config`,
    },
    {
      what: 'an oauth2 block without authorization_url',
      args: ['--file', 'oauth.json'],
      line: (root) => `fluidmcp: ${root}/oauth.json: mcpServers.o.auth.authorization_url: expected a URL such as "https://provider.example/oauth/authorize"`,
    },
    {
      what: 'a header that refers to an unset variable',
      args: ['--file', 'headers.json'],
      line: (root) =>
        `fluidmcp: ${root}/headers.json: mcpServers.r.headers.Authorization: refers to \${FMCP_DRY_RUN_UNSET}, which is not set: export FMCP_DRY_RUN_UNSET=... before starting the gateway, or add it to mcpServers.r.env`,
    },
    {
      what: 'an api_key block without keys_env (plugin from the config)',
      args: ['--file', 'apikey.json'],
      line: (root) => `fluidmcp: ${root}/apikey.json: mcpServers.k.auth.keys_env: expected the name of an environment variable, such as "MY_SERVER_API_KEYS"`,
    },
    {
      what: 'two packages that define the same server name',
      args: ['all'],
      line: (root) =>
        `fluidmcp: ${root}/packages/acme/two/1.0.0/metadata.json: mcpServers.same: the name is already used by ${root}/packages/acme/one/1.0.0/metadata.json: server names must be unique`,
    },
  ];

  for (const c of cases) {
    it(`${c.what}: the same line and exit 2 as the start`, async () => {
      const options = { cwd: tree.root, env: { ...env, FMCP_PACKAGES_DIR: join(tree.root, 'packages') } };
      const [dry, start] = await Promise.all([runCli(['run', ...c.args], options), runCli(['run', ...c.args, '--start-server', '--port', '0'], options)]);
      expect(start.code, start.stderr).to.equal(2);
      expect(theErrorLine(start)).to.equal(c.line(tree.root));
      expect(dry.code, dry.stderr).to.equal(2);
      expect(theErrorLine(dry)).to.equal(c.line(tree.root));
      expect(dry.stdout).to.not.include('Configuration is valid');
    });
  }

  it('still says a valid configuration is valid, and starts nothing', async () => {
    tree.write('good.json', { mcpServers: { k: { ...server, auth: { type: 'api_key', keys_env: 'FMCP_DRY_RUN_KEYS' } } }, plugins: [apiKeyPlugin] });
    const result = await runCli(['run', '--file', 'good.json'], { cwd: tree.root, env: { FMCP_DRY_RUN_KEYS: 'alice:alice-key-0123456789abcdef' } });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout.split('\n')).to.deep.equal([
      'Reading good.json...',
      `Would add k endpoints (command ${process.execPath}, auth api_key)`,
      'Configuration is valid. Not starting the gateway: add --start-server to serve 1 server on port 8099',
      '',
    ]);
  });
});
