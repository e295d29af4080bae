import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createKernel, type Kernel } from '../../../core/index.js';
import { transportStdio } from '../../../plugins/transport-stdio/index.js';
import { fixture, repoRoot } from '../../helpers/paths.js';
import { captureLogger, isAlive, Recorder, serverDef, waitUntil } from './recorder.js';

describe('transport-stdio: plugin', () => {
  let kernel: Kernel | undefined;

  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it('claims servers with a command, creates upstreams through the kernel, and stops them when the kernel closes', async () => {
    const lines = serverDef('lines', process.execPath, [fixture('stdio-lines.mjs')], repoRoot);
    const { log } = captureLogger('info');
    kernel = createKernel({ port: 0, servers: [lines], logger: log }).use(transportStdio({ stopGraceMs: 500 }));
    await kernel.start();
    expect(lines.transport).to.equal('stdio');
    const factory = kernel.transports.get('stdio')!;
    expect(factory.kind).to.equal('stdio');
    expect(factory.claims({ command: 'node' })).to.equal(true);
    expect(factory.claims({ url: 'http://127.0.0.1:1/mcp' })).to.equal(false);
    expect(kernel.transports.owner('stdio')).to.equal('transport-stdio');

    const upstream = factory.create({ server: lines, env: {}, label: 'lines#shared', log });
    const rec = new Recorder();
    await upstream.start(rec);
    upstream.send({ jsonrpc: '2.0', id: 1, method: 'echo', params: { via: 'kernel' } });
    expect((await rec.answer(1)).result).to.deep.equal({ via: 'kernel' });

    const { port } = kernel.address();
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { servers: Record<string, Record<string, unknown>> };
    expect(health.servers.lines).to.deep.include({ transport: 'stdio', processes: [{ state: 'up', restarts: 0 }] });

    const pid = upstream.status.pid!;
    await kernel.stop();
    kernel = undefined;
    expect(upstream.status.state).to.equal('stopped');
    expect(isAlive(pid)).to.equal(false);
  });

  it('refuses unknown or invalid options, naming them', () => {
    expect(() => transportStdio({ stopGraceMs: -1 })).to.throw('option stopGraceMs must be a number of at least 0');
    expect(() => transportStdio({ restartBase: 5 } as never)).to.throw('unknown option "restartBase"');
  });
});

describe('transport-stdio: last-resort cleanup', () => {
  it('kills every live process group when the gateway exits without stopping them, with one shared exit listener', async () => {
    const moduleUrl = pathToFileURL(join(repoRoot, 'dist', 'plugins', 'transport-stdio', 'index.js')).href;
    const coreUrl = pathToFileURL(join(repoRoot, 'dist', 'core', 'index.js')).href;
    // a tiny gateway: two stubborn upstreams, then process.exit() with no stop()
    const script = `
      const { stdioTransportFactory } = await import(${JSON.stringify(moduleUrl)});
      const { createLogger } = await import(${JSON.stringify(coreUrl)});
      const log = createLogger({ level: 'silent' });
      const factory = stdioTransportFactory();
      const before = process.listenerCount('exit');
      const pids = [];
      for (const name of ['one', 'two']) {
        const server = { name, entry: { command: process.execPath, args: [${JSON.stringify(fixture('stdio-stubborn.mjs'))}] }, source: 'test', dir: ${JSON.stringify(repoRoot)}, transport: 'stdio' };
        const upstream = factory.create({ server, env: {}, label: name, log });
        await new Promise((resolve, reject) => {
          upstream.start({ up() {}, down() {}, message(m) { if (m.method === 'pids') { pids.push(m.params.pid, m.params.grandchild); resolve(); } } }).catch(reject);
        });
      }
      process.stdout.write(JSON.stringify({ pids, exitListeners: process.listenerCount('exit') - before }) + '\\n');
      process.exit(0);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).to.equal(0);
    const { pids, exitListeners } = JSON.parse(out) as { pids: number[]; exitListeners: number };
    expect(pids).to.have.length(4);
    expect(exitListeners).to.equal(1);
    await waitUntil(() => pids.every((p) => !isAlive(p)), 'every server and grandchild to be gone', 3000);
  });
});
