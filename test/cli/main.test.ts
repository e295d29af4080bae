import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { cliPath, repoRoot } from '../helpers/paths.js';

describe('cli: fluidmcp', () => {
  it('is an executable script that starts with a shebang', () => {
    expect(readFileSync(cliPath, 'utf8').split('\n')[0]).to.equal('#!/usr/bin/env node');
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
