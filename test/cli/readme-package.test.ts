import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suiteTempTree } from '../helpers/cli.js';
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
    const child = spawn('bash', ['-c', script], { cwd: tree.root, env: { ...process.env, FMCP_PACKAGES_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the README's example did not finish within 20 s: ${stdout} ${stderr}`));
      }, 20_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
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
