import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, runCommand } from '../helpers/cli.js';
import { cliPath, repoRoot } from '../helpers/paths.js';

describe('cli: fluidmcp', () => {
  it('is a script whose shebang line runs it with node', () => {
    const shebang = readFileSync(cliPath, 'utf8').split('\n')[0]!;
    expect(shebang).to.match(/^#!\/usr\/bin\/env (-S )?node( --[a-z-]+=\S+)*$/);
    // what the kernel does with a bin: run the shebang's command line with the script appended
    const [command, ...args] = shebang.slice(2).split(' ');
    const result = spawnSync(command!, [...args, cliPath, '--version'], { encoding: 'utf8' });
    expect(result.status).to.equal(0);
    expect(result.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
  });

  it('runs from a clone as the README shows: `npx fluidmcp --help` after `npm run build`', async () => {
    // npm runs the bin itself (sh: fluidmcp), so the built file must be executable: the postbuild script's job
    const { code, stdout, stderr } = await runCommand('npx', ['--offline', 'fluidmcp', '--help'], { cwd: repoRoot, timeout: 30_000 });
    expect(stderr).to.not.contain('Permission denied');
    expect(code).to.equal(0);
    expect(stdout).to.contain('fluidmcp run [package]').and.contain('fluidmcp list');
  });

  it('prints help with both commands and the run options, exit 0', async () => {
    const result = await runCli(['--help']);
    expect(result.code).to.equal(0);
    expect(result.stdout).to.contain('fluidmcp run [package]').and.contain('fluidmcp list');
    const run = await runCli(['run', '--help']);
    for (const option of ['--start-server', '--file', '--port', '--host', '--public-url', '--log-level', '--allowed-host', '--allowed-origin', '--plugin', '--packages-dir']) {
      expect(run.stdout).to.contain(option);
    }
    expect(run.stdout).to.match(/--port [^-]*\[default: 8099\]/);
    expect(run.stdout).to.match(/--host [^-]*\[default: "127\.0\.0\.1"\]/);
  });

  it('prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const result = await runCli(['--version']);
    expect(result.stdout.trim()).to.equal(version);
  });
});
