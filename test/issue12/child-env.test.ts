import { expect } from 'chai';
import { join } from 'node:path';
import { everythingMetadata, processesWith, RunningCli, runCli, tempTree } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';
import { waitFor } from '../helpers/request.js';
import { getEnv } from '../examples/plugins/get-env.js';

const apiKeyPlugin = join(repoRoot, 'dist', 'examples', 'plugins', 'api-key', 'index.js');
const ALICE_KEY = 'alice-env-test-key-5be0f3a17c9d';

/** What any child may get from the gateway's environment without asking (Linux). */
const DEFAULT_NAMES = ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TMPDIR', 'TZ'];

/**
 * Issue 12, item 2: a child gets the default environment set, its entry's `env`, its own token variable,
 * and what `inherit_env` asks for; never a variable an auth block names, nor the gateway's FMCP_* settings.
 */
describe('issue 12: server processes get only the environment they need', function () {
  this.timeout(40_000);
  const tree = tempTree();
  const marker = tree.root;
  const running: RunningCli[] = [];
  // what the user exported before `fluidmcp run`, as the product description tells them to
  const gatewayEnv = {
    GOOGLE_CLIENT_ID: 'google-client-id-value',
    GOOGLE_CLIENT_SECRET: 'google-client-secret-value',
    CALC_KEYS: `alice:${ALICE_KEY}`,
    GATEWAY_OWN_VAR: 'gateway-only',
    PROXY_FOR_SERVERS: 'http://proxy.internal:3128',
    FMCP_PACKAGES_DIR: join(tree.root, 'packages'),
    LANG: 'C.UTF-8',
  };
  const everything = (): { command: string; args: string[] } => everythingMetadata(['x'], marker).mcpServers.x!;

  before(() => {
    tree.write('config.json', {
      mcpServers: {
        plain: { ...everything(), env: { ENTRY_VAR: 'from-entry' } },
        gmail: {
          ...everything(),
          auth: {
            type: 'oauth2',
            flow: 'pkce',
            authorization_url: 'https://accounts.google.com/o/oauth2/v2/auth',
            // no provider is reachable from the tests: its tokens are knowingly accepted unverified
            validate: 'none',
            token_url: 'https://oauth2.googleapis.com/token',
            scopes: ['https://www.googleapis.com/auth/gmail.readonly'],
            client_id_env: 'GOOGLE_CLIENT_ID',
            client_secret_env: 'GOOGLE_CLIENT_SECRET',
            env_var_name: 'GMAIL_ACCESS_TOKEN',
          },
        },
        calc: { ...everything(), auth: { type: 'api_key', keys_env: 'CALC_KEYS' } },
        listed: { ...everything(), inherit_env: ['PROXY_FOR_SERVERS'] },
        everything: { ...everything(), inherit_env: true },
      },
      plugins: [apiKeyPlugin],
    });
  });

  after(async () => {
    await Promise.all(running.map((cli) => cli.stop()));
    await waitFor(() => processesWith(marker).length === 0, 5000, 'the server processes to end');
    tree.remove();
  });

  const secrets = ['GOOGLE_CLIENT_ID', 'GOOGLE_CLIENT_SECRET', 'CALC_KEYS', 'FMCP_PACKAGES_DIR'];

  it('hands no server the gateway\'s secrets or own variables: get-env with and without auth, and with inherit_env', async () => {
    const cli = new RunningCli(['run', '--file', 'config.json', '--start-server', '--port', '0'], { cwd: tree.root, env: gatewayEnv });
    running.push(cli);
    const base = await cli.ready();

    const plain = (await getEnv(base, 'plain')).env!;
    expect(Object.keys(plain).filter((name) => !DEFAULT_NAMES.includes(name)).sort()).to.deep.equal(['ENTRY_VAR']);
    expect(plain.PATH).to.equal(process.env.PATH);
    expect(plain.LANG).to.equal('C.UTF-8');

    const gmail = await getEnv(base, 'gmail', { authorization: 'Bearer user-token-1' });
    expect(gmail.status, JSON.stringify(gmail.error)).to.equal(200);
    expect(Object.keys(gmail.env!).filter((name) => !DEFAULT_NAMES.includes(name)).sort()).to.deep.equal(['GMAIL_ACCESS_TOKEN']);
    expect(gmail.env!.GMAIL_ACCESS_TOKEN).to.equal('user-token-1');

    const calc = await getEnv(base, 'calc', { 'x-api-key': ALICE_KEY });
    expect(calc.status).to.equal(200);
    expect(Object.keys(calc.env!).filter((name) => !DEFAULT_NAMES.includes(name)).sort()).to.deep.equal(['FMCP_CALLER']);

    const listed = (await getEnv(base, 'listed')).env!;
    expect(Object.keys(listed).filter((name) => !DEFAULT_NAMES.includes(name)).sort()).to.deep.equal(['PROXY_FOR_SERVERS']);

    const all = (await getEnv(base, 'everything')).env!;
    expect(all.GATEWAY_OWN_VAR).to.equal('gateway-only');
    expect(all.PROXY_FOR_SERVERS).to.equal('http://proxy.internal:3128');
    for (const env of [plain, gmail.env!, calc.env!, listed, all]) {
      for (const name of secrets) expect(env, name).to.not.have.property(name);
      for (const name of Object.keys(env)) expect(name).to.not.match(/^FMCP_(?!CALLER$)/);
    }
  });

  it('refuses an inherit_env list that names an auth block\'s variable, and an inherit_env that is not a list of names', async () => {
    tree.write('bad-inherit.json', {
      mcpServers: {
        gmail: { ...everything(), auth: { type: 'api_key', keys_env: 'CALC_KEYS' } },
        other: { ...everything(), inherit_env: ['HTTPS_PROXY', 'CALC_KEYS'] },
      },
      plugins: [apiKeyPlugin],
    });
    const refused = await runCli(['run', '--file', 'bad-inherit.json', '--start-server', '--port', '0'], { cwd: tree.root, env: gatewayEnv });
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(/fluidmcp: \/.*\/bad-inherit\.json: mcpServers\.other\.inherit_env: "CALC_KEYS" is named by an auth block \(mcpServers\.gmail\.auth\.keys_env\): the gateway's credentials never reach a server process; put what the server needs in "env"\n/);

    // the dry run says the same as the start: no "Configuration is valid" for a config the start refuses
    tree.write('bad-secret.json', {
      mcpServers: {
        gmail: {
          ...everything(),
          auth: { type: 'oauth2', flow: 'pkce', authorization_url: 'https://accounts.google.com/o/oauth2/v2/auth', token_url: 'https://oauth2.googleapis.com/token', validate: 'none', client_id_env: 'GOOGLE_CLIENT_ID', client_secret_env: 'MY_SECRET' },
        },
        other: { ...everything(), inherit_env: ['MY_SECRET'] },
      },
    });
    const dry = await runCli(['run', '--file', 'bad-secret.json'], { cwd: tree.root, env: gatewayEnv });
    expect(dry.code).to.equal(2);
    expect(dry.stdout).to.not.contain('Configuration is valid');
    expect(dry.stderr).to.match(/fluidmcp: \/.*\/bad-secret\.json: mcpServers\.other\.inherit_env: "MY_SECRET" is named by an auth block \(mcpServers\.gmail\.auth\.client_secret_env\): the gateway's credentials never reach a server process; put what the server needs in "env"\n/);

    // a gateway setting: refused by the dry run and by the start, not silently dropped
    tree.write('bad-setting.json', { mcpServers: { other: { ...everything(), inherit_env: ['HTTPS_PROXY', 'FMCP_TOKEN_KEYS'] } } });
    const setting = /fluidmcp: \/.*\/bad-setting\.json: mcpServers\.other\.inherit_env: "FMCP_TOKEN_KEYS" is a setting of the gateway itself \(FMCP_\*\): it never reaches a server process; remove it, or put what the server needs in "env"\n/;
    for (const args of [['run', '--file', 'bad-setting.json'], ['run', '--file', 'bad-setting.json', '--start-server', '--port', '0']]) {
      const result = await runCli(args, { cwd: tree.root, env: { ...gatewayEnv, FMCP_TOKEN_KEYS: 'a-key-for-the-gateway-only-0123456789abcdef' } });
      expect(result.code, args.join(' ')).to.equal(2);
      expect(result.stdout).to.not.contain('Configuration is valid').and.not.contain('gateway ready');
      expect(result.stderr).to.match(setting);
    }

    tree.write('bad-shape.json', { mcpServers: { other: { ...everything(), inherit_env: 'PATH' } } });
    const shape = await runCli(['run', '--file', 'bad-shape.json'], { cwd: tree.root, env: gatewayEnv });
    expect(shape.code).to.equal(2);
    expect(shape.stderr).to.match(/mcpServers\.other\.inherit_env: expected true, false, or a list of environment variable names such as \["HTTPS_PROXY", "NODE_EXTRA_CA_CERTS"\]/);
  });
});
