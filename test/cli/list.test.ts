import { expect } from 'chai';
import { join } from 'node:path';
import { runCli, suiteTempTree } from '../helpers/cli.js';

describe('cli: fluidmcp list', () => {
  const meta = { mcpServers: { s: { command: 'node' } } };
  const tree = suiteTempTree({
    'pk/test/versions/1.9.0/metadata.json': meta,
    'pk/test/versions/1.10.0/metadata.json': meta,
    'pk/test/versions/1.2.0/metadata.json': meta,
    'pk/acme/gmail/0.1.0/metadata.json': meta,
    'pk/acme/gmail/0.2.0/notes.txt': 'no metadata.json: not a package',
  });

  it('prints every installed version, one author/pkg@version a line, sorted by name then semver', async () => {
    const result = await runCli(['list'], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: join(tree.root, 'pk') } });
    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal('acme/gmail@0.1.0\ntest/versions@1.2.0\ntest/versions@1.9.0\ntest/versions@1.10.0\n');
    expect(result.stderr).to.equal('');
  });

  it('reads --packages-dir', async () => {
    const result = await runCli(['list', '--packages-dir', 'pk'], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: '/nonexistent' } });
    expect(result.stdout.split('\n')).to.have.length(5);
  });

  it('says where it looked when nothing is installed, and exits 0', async () => {
    const result = await runCli(['list'], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: undefined } });
    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal('');
    expect(result.stderr).to.equal(`fluidmcp: no packages installed in ${join(tree.root, '.fmcp-packages')} (lay them out as author/package/version/metadata.json, or set FMCP_PACKAGES_DIR)\n`);
  });
});
