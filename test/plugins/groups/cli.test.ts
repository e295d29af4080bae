import { expect } from 'chai';
import { errorLines, RunningCli, runCli, tempTree } from '../../helpers/cli.js';
import { everythingServer } from '../../helpers/paths.js';
import { postJson } from '../../helpers/gateway.js';
import { filesystemServer } from './group-gateway.js';

const oauth = (clientIdEnv: string): Record<string, unknown> => ({
  type: 'oauth2',
  flow: 'pkce',
  authorization_url: 'https://login.example.com/authorize',
  token_url: 'https://login.example.com/token',
  client_id_env: clientIdEnv,
  env_var_name: 'TOKEN',
});

describe('groups in fluidmcp run: config files and --group', () => {
  let tree: ReturnType<typeof tempTree>;
  const servers = {
    everything: { command: process.execPath, args: [everythingServer, 'stdio'] },
    mail: { command: process.execPath, args: ['mail.js'], auth: oauth('MAIL_CLIENT_ID') },
    mail2: { command: process.execPath, args: ['mail.js'], auth: oauth('MAIL_CLIENT_ID') },
    calendar: { command: process.execPath, args: ['calendar.js'], auth: oauth('CALENDAR_CLIENT_ID') },
  };
  before(() => {
    tree = tempTree({
      'unknown.json': { mcpServers: servers, groups: { work: { servers: ['everything', 'jira'] } } },
      'clash.json': { mcpServers: servers, groups: { mail: { servers: ['everything'] } } },
      'mixed.json': { mcpServers: servers, groups: { work: { servers: ['everything', 'mail', 'calendar'] } } },
      'same.json': { mcpServers: servers, groups: { work: { servers: ['everything', 'mail', { server: 'mail2', prefix: 'backup' }] } } },
    });
  });
  after(() => tree.remove());

  const cases: { what: string; args: () => string[]; line: () => string }[] = [
    {
      what: 'an unknown member',
      args: () => ['--file', `${tree.root}/unknown.json`],
      line: () => `fluidmcp: ${tree.root}/unknown.json: groups.work.servers[1]: unknown server "jira": a member must be one of the configured servers ("everything", "mail", "mail2", "calendar")`,
    },
    {
      what: 'a group with the name of a server',
      args: () => ['--file', `${tree.root}/clash.json`],
      line: () => `fluidmcp: ${tree.root}/clash.json: groups.mail: the group "mail" has the name of the server "mail" (${tree.root}/clash.json): groups and servers share one name space, rename one`,
    },
    {
      what: 'members with different auth blocks',
      args: () => ['--file', `${tree.root}/mixed.json`],
      line: () => `fluidmcp: ${tree.root}/mixed.json: groups.work: members "mail" and "calendar" have different auth blocks, so each needs its own login and one token cannot serve both: put them in separate groups, or give them the same auth block`,
    },
    {
      what: 'an unknown member in --group',
      args: () => ['--file', `${tree.root}/same.json`, '--group', 'tools=everything,nope'],
      line: () => 'fluidmcp: --group: groups.tools.servers[1]: unknown server "nope": a member must be one of the configured servers ("everything", "mail", "mail2", "calendar")',
    },
    {
      what: 'a malformed --group',
      args: () => ['--file', `${tree.root}/same.json`, '--group', 'tools'],
      line: () => 'fluidmcp: --group: tools: expected name=server1,server2 (a group name, "=", and its servers separated by commas)',
    },
  ];
  for (const c of cases) {
    it(`fails start-up with one line for ${c.what}`, async () => {
      const result = await runCli(['run', ...c.args(), '--start-server', '--port', '0']);
      expect(errorLines(result.stderr)).to.deep.equal([c.line()]);
      expect(result.code).to.not.equal(0);
      expect(result.stdout).to.not.include('ready at');
    });
  }

  it('accepts members that share one auth block, and shows groups when it only validates', async () => {
    const result = await runCli(['run', '--file', `${tree.root}/same.json`, '--group', 'tools=everything']);
    expect(errorLines(result.stderr)).to.deep.equal([]);
    expect(result.stdout).to.include('Would add work endpoints (group of everything, mail, mail2)\n');
    expect(result.stdout).to.include('Would add tools endpoints (group of everything)\n');
    expect(result.code).to.equal(0);
  });

  it('serves a --group at /{group}/mcp', async () => {
    const file = tree.write('serve.json', {
      mcpServers: { everything: servers.everything, fs: { command: process.execPath, args: [filesystemServer, tree.root] } },
    });
    const cli = new RunningCli(['run', '--file', file, '--group', 'both=everything,fs', '--start-server', '--port', '0', '--log-level', 'warn']);
    try {
      const base = await cli.ready(30_000);
      expect(cli.stdout).to.include('Added both endpoints (group of everything, fs)\n');
      const res = await postJson(`${base}/both/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'everything__echo', arguments: { message: 'cli group' } } });
      expect(res.json).to.deep.equal({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'Echo: cli group' }] } });
    } finally {
      await cli.stop();
    }
  });
});
