import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, suiteTempTree } from '../helpers/cli.js';
import { cliPath, repoRoot } from '../helpers/paths.js';

/** The README's "Running your own servers" example of a package, run as written (fluidmcp = the built CLI). */
describe('cli: the README\'s package example', function () {
  this.timeout(30_000);
  const tree = suiteTempTree();

  it('lays out a package by hand and the dry run of `fluidmcp run acme/everything@1.0.0` validates it', async () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const block = [...readme.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('mkdir -p .fmcp-packages/'));
    expect(block, 'a bash block in README.md that makes a package folder').to.be.a('string');
    const script = `fluidmcp() { "${process.execPath}" "${cliPath}" "$@"; }\nset -e\n${block}`;
    const { code, stdout, stderr } = await runCommand('bash', ['-c', script], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: '' }, timeout: 20_000 });
    expect(stderr).to.equal('');
    expect(code).to.equal(0);
    expect(stdout.split('\n')).to.deep.equal([
      'Reading metadata.json...',
      'Would add everything endpoints (command npx)',
      'Configuration is valid. Not starting the gateway: add --start-server to serve 1 server on port 8099',
      '',
    ]);
  });
});
