import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { everythingMetadata, processesWith, tempTree } from '../helpers/cli.js';
import { cliPath, fixture } from '../helpers/paths.js';
import { waitFor } from '../helpers/request.js';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Issue 12, item 7: a stop signal ends the gateway within its stop bound whatever its stdin, stdout and
 * stderr are connected to, and a second signal ends it at once.
 */
describe('cli: a stop signal ends fluidmcp run whatever stdio is connected to', function () {
  this.timeout(40_000);
  const tree = tempTree();
  // every process of this file has the temporary folder on its command line
  const marker = tree.root;
  const packages = `${tree.root}/packages`;
  const env = { ...process.env, FMCP_LOG_LEVEL: undefined, FMCP_PACKAGES_DIR: packages, GOOGLE_CLIENT_ID: 'client-id', GOOGLE_CLIENT_SECRET: 'client-secret' };
  const killLeftovers = async (): Promise<void> => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await waitFor(() => processesWith(marker).length === 0, 5000, 'the test\'s processes to end');
  };

  before(() => {
    const gmail = everythingMetadata(['gmail'], marker).mcpServers.gmail!;
    tree.write('packages/test/gmail/1.0.0/metadata.json', {
      mcpServers: {
        gmail: {
          ...gmail,
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
      },
    });
    tree.write('packages/test/noisy/1.0.0/metadata.json', { mcpServers: { noisy: { command: process.execPath, args: [fixture('noisy-stderr.mjs'), marker] } } });
  });

  afterEach(killLeftovers);
  after(() => tree.remove());

  /** Waits for the exit of `child`; undefined when it is still running after `ms`. */
  const exitWithin = (child: ReturnType<typeof spawn>, ms: number): Promise<Exit | undefined> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
      const timer = setTimeout(() => resolve(undefined), ms);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });

  it('returns from spawnSync(cli run <package with oauth2/pkce>, {timeout: 5000}): exit 0 after the SIGTERM', async () => {
    // spawnSync blocks its caller, so a helper process runs it and reports; this test only waits for the helper
    const script = `
      const { spawnSync } = require('node:child_process');
      const r = spawnSync(process.execPath, [${JSON.stringify(cliPath)}, 'run', 'test/gmail@1.0.0', '--start-server', '--port', '0', '--packages-dir', ${JSON.stringify(packages)}], { timeout: 5000 });
      process.stdout.write(JSON.stringify({ status: r.status, signal: r.signal, error: r.error && r.error.code, stdout: String(r.stdout) }));
    `;
    const helper = spawn(process.execPath, ['-e', script, marker], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    helper.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exit = await exitWithin(helper, 20_000);
    expect(exit, 'spawnSync returned within 20 s (the gateway exited after its SIGTERM)').to.not.equal(undefined);
    const result = JSON.parse(out) as { status: number | null; signal: string | null; error: string; stdout: string };
    expect(result.error).to.equal('ETIMEDOUT');
    expect(result.stdout).to.match(/FluidMCP gateway ready at http:\/\/localhost:\d+\n/);
    expect({ status: result.status, signal: result.signal }).to.deep.equal({ status: 0, signal: null });
  });

  /** Starts the gateway with stdout and stderr pipes; resolves once it printed its ready line. */
  const startGateway = async (args: string[]): Promise<ReturnType<typeof spawn>> => {
    const child = spawn(process.execPath, [cliPath, 'run', ...args, '--start-server', '--port', '0', '--packages-dir', packages], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    const onData = (s: string): void => void (stdout += s);
    child.stdout!.setEncoding('utf8').on('data', onData);
    await waitFor(() => /FluidMCP gateway ready at/.test(stdout) || child.exitCode !== null, 20_000, 'the gateway\'s ready line');
    expect(stdout).to.match(/FluidMCP gateway ready at/);
    child.stdout!.off('data', onData);
    return child;
  };

  it('exits on SIGTERM when the reader of its stdout and stderr went away (closed pipes), with and without auth', async () => {
    for (const pkg of ['test/gmail@1.0.0', 'test/noisy@1.0.0']) {
      const child = await startGateway([pkg, '--log-level', 'debug']);
      child.stdout!.destroy();
      child.stderr!.destroy();
      child.kill('SIGTERM');
      expect(await exitWithin(child, 12_000), `${pkg}: exit within its 10 s stop bound`).to.deep.equal({ code: 0, signal: null });
    }
  });

  it('exits on SIGTERM when its stderr is a full pipe nobody reads (1 MB of debug lines)', async () => {
    const child = await startGateway(['test/noisy@1.0.0', '--log-level', 'debug']);
    child.stderr!.pause();
    // the noisy server's 3000 stderr lines are logged by the gateway: wait until they are all in the gateway's log queue
    await waitFor(() => (child.stderr!.readableLength ?? 0) > 0, 10_000, 'the gateway to write to its stderr');
    child.kill('SIGTERM');
    expect(await exitWithin(child, 12_000), 'exit within its 10 s stop bound').to.deep.equal({ code: 0, signal: null });
  });

  it('exits at once on a second signal while the first one is still stopping, stderr a full pipe nobody reads', async () => {
    // preClose never ends, so only the second signal can end the gateway; the hook leaves a file to say it runs
    const stopping = `${tree.root}/stuck/stopping`;
    tree.write('stuck/stuck-plugin.mjs', `import { writeFileSync } from 'node:fs';
export const plugin = { name: 'stuck', register(api) { api.addHook('preClose', () => { writeFileSync(${JSON.stringify(stopping)}, 'x'); return new Promise(() => {}); }); } };\n`);
    const child = await startGateway(['test/noisy@1.0.0', '--log-level', 'debug', '--plugin', `${tree.root}/stuck/stuck-plugin.mjs`]);
    child.stderr!.pause();
    await waitFor(() => (child.stderr!.readableLength ?? 0) > 0, 10_000, 'the gateway to write to its stderr');
    child.kill('SIGTERM');
    await waitFor(() => existsSync(stopping), 10_000, 'the first SIGTERM to start the stop');
    child.kill('SIGTERM');
    expect(await exitWithin(child, 3000), 'exit at once on the second SIGTERM').to.deep.equal({ code: 1, signal: null });
  });
});
