import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingNodeFlags } from '../../cli/node-flags.js';
import { everythingMetadata, RunningCli, tempTree } from '../helpers/cli.js';
import { waitFor } from '../helpers/request.js';

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Gone, or a zombie waiting for its new parent to reap it. */
function ended(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

describe('cli: the gateway\'s Node flags without the shebang', function () {
  this.timeout(30_000);
  const tree = tempTree({ 'config.json': everythingMetadata(['everything']) });
  const running: RunningCli[] = [];
  const start = (env: Record<string, string | undefined> = {}): RunningCli => {
    // started as `node dist/cli/main.js ...`: the shebang's flags do not apply
    const cli = new RunningCli(['run', '--file', join(tree.root, 'config.json'), '--start-server', '--port', '0'], { cwd: tree.root, env });
    running.push(cli);
    return cli;
  };
  const gatewayChild = (cli: RunningCli): number | undefined => childrenOf(cli.pid).find((p) => cmdline(p).some((a) => a.endsWith(join('cli', 'main.js'))));

  afterEach(async () => {
    for (const cli of running.splice(0)) await cli.stop('SIGKILL').catch(() => undefined);
  });
  after(() => tree.remove());

  it('missingNodeFlags: a flag given on the command line or in NODE_OPTIONS (either spelling) is not missing', () => {
    expect(missingNodeFlags([], '')).to.deep.equal(['--max-semi-space-size=4', '--heap-growing-percent=50']);
    expect(missingNodeFlags(['--max-semi-space-size=4', '--heap-growing-percent=50'], '')).to.deep.equal([]);
    expect(missingNodeFlags(['--max-semi-space-size=1'], '')).to.deep.equal(['--heap-growing-percent=50']);
    expect(missingNodeFlags([], '--max_semi_space_size=2 --heap_growing_percent=20 --inspect')).to.deep.equal([]);
    expect(missingNodeFlags(['--max-old-space-size=200'], '--trace-warnings')).to.deep.equal(['--max-semi-space-size=4', '--heap-growing-percent=50']);
  });

  it('run --start-server under plain node serves from a child with the gateway Node flags, and SIGTERM to the launcher stops both with exit 0', async () => {
    const cli = start();
    await cli.ready();
    const child = gatewayChild(cli);
    expect(child, `children of ${cli.pid}: ${childrenOf(cli.pid).map((p) => cmdline(p).join(' ')).join(' | ')}`).to.be.a('number');
    expect(cmdline(child!).slice(1, 3)).to.deep.equal(['--max-semi-space-size=4', '--heap-growing-percent=50']);
    expect(cmdline(cli.pid)).to.not.include('--max-semi-space-size=4');
    const result = await cli.stop('SIGTERM');
    expect(result.code).to.equal(0);
    expect(result.stdout).to.contain('FluidMCP gateway ready at');
    await waitFor(() => ended(child!), 3000, 'the relaunched gateway to end');
  });

  it('FMCP_NODE_FLAGS set: no relaunch, the process itself serves', async () => {
    const cli = start({ FMCP_NODE_FLAGS: 'off' });
    await cli.ready();
    expect(gatewayChild(cli)).to.equal(undefined);
    expect((await cli.stop('SIGTERM')).code).to.equal(0);
  });

  it('the relaunched gateway stops when its launcher is killed with SIGKILL', async () => {
    const cli = start();
    await cli.ready();
    const child = gatewayChild(cli)!;
    expect(child).to.be.a('number');
    await cli.stop('SIGKILL');
    await waitFor(() => ended(child), 10_000, 'the orphaned gateway to stop');
  });
});

describe('createKernel() in a program started without the gateway\'s Node flags', () => {
  it('says so once at start, naming the flags and what to do', async () => {
    const { createKernel } = await import('../../core/index.js');
    const { Writable } = await import('node:stream');
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    // this mocha process runs without them (the test asserts it, so it cannot pass by accident)
    expect(missingNodeFlags()).to.deep.equal(['--max-semi-space-size=4', '--heap-growing-percent=50']);
    const kernel = createKernel({ port: 0, logLevel: 'info', logDestination: sink });
    await kernel.start();
    await kernel.stop();
    const said = lines.map((l) => JSON.parse(l) as { msg: string; missing?: string[] }).filter((l) => l.msg.startsWith('Node runs without'));
    expect(said).to.have.length(1);
    expect(said[0]!.msg).to.equal('Node runs without --max-semi-space-size=4 --heap-growing-percent=50, the flags the gateway\'s memory and speed figures are measured with: start node with them, or put them in NODE_OPTIONS (README, Performance)');
  });
});
