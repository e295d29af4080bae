import { expect } from 'chai';
import { errorLines, runCli, tempTree } from '../helpers/cli.js';

describe('fluidmcp run --token-key', function () {
  this.timeout(30_000);
  const pkceServer = {
    command: process.execPath,
    args: ['-e', ''],
    auth: { type: 'oauth2', flow: 'pkce', authorization_url: 'https://p.example/a', token_url: 'https://p.example/t', client_id_env: 'X_ID', env_var_name: 'X_TOKEN' },
  };

  it('a key that is not 32 bytes stops start-up with one line naming the flag and how to make a key', async () => {
    const tree = tempTree({ 'config.json': { mcpServers: { box: pkceServer } } });
    try {
      const result = await runCli(['run', '--file', 'config.json', '--start-server', '--port', '0', '--token-key', 'short'], { cwd: tree.root, env: { X_ID: 'id' } });
      expect(result.code).to.not.equal(0);
      const lines = errorLines(result.stderr);
      expect(lines, result.stderr).to.have.length(1);
      expect(lines[0]).to.include('--token-key / FMCP_TOKEN_KEYS').and.include('key #1').and.include('openssl rand -hex 32');
    } finally {
      tree.remove();
    }
  });

  it('FMCP_TOKEN_KEYS is read when no --token-key is given', async () => {
    const tree = tempTree({ 'config.json': { mcpServers: { box: pkceServer } } });
    try {
      const result = await runCli(['run', '--file', 'config.json', '--start-server', '--port', '0'], { cwd: tree.root, env: { X_ID: 'id', FMCP_TOKEN_KEYS: 'a,b' } });
      expect(result.code).to.not.equal(0);
      expect(errorLines(result.stderr).join('\n')).to.include('key #1');
    } finally {
      tree.remove();
    }
  });
});
