import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { everythingMetadata, processesWith, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { fixture } from '../helpers/paths.js';
import { waitFor } from '../helpers/request.js';
import { health, waitForHealth } from './gateway-probe.js';
import { describeTally, echoLoad, send } from './load-driver.js';

/*
 * The gateway killed with SIGKILL (no exit handler runs) under load: every server process it started,
 * and what they started, ends by itself. Servers run in process groups of their own, so nothing of the
 * gateway's group reaches them; transport-stdio's watchdog (see plugins/transport-stdio/watchdog.ts)
 * kills those groups when the gateway's end of its pipe closes.
 */
describe('reliability: the gateway (fluidmcp run) killed with SIGKILL under load', function () {
  this.timeout(60_000);
  const tree = suiteTempTree();
  const marker = `fmcp-rel-sigkill-${randomUUID()}`;
  let cli: RunningCli | undefined;

  after(async () => {
    await cli?.stop('SIGKILL');
  });

  it('leaves no server process behind: shared ones, and ones with a call in flight that would take a minute', async () => {
    const config = tree.write('config.json', {
      mcpServers: {
        ...everythingMetadata(['everything'], marker).mcpServers,
        // answers a slow call only after a minute: it would outlive the gateway unless something kills it
        mini: { command: process.execPath, args: [fixture('proxy-mini.mjs'), marker] },
      },
    });
    cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0']);
    const port = Number(new URL(await cli.ready()).port);
    // the gateway listens before its servers are up: calls made meanwhile would only wait in their queues
    await waitForHealth(port, 'everything', (h) => h.state === 'up', 30_000, 'everything up');
    await waitForHealth(port, 'mini', (h) => h.state === 'up', 30_000, 'mini up');
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const load = echoLoad({ port, path: '/everything/mcp', clients: 16, until, timeoutMs: 10_000, mixSessions: false });
    const slow = Array.from({ length: 4 }, (_, i) =>
      send({ port, path: '/mini/mcp', timeoutMs: 30_000, body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'slow', arguments: { message: 'x', ms: 60_000 } } }) }).catch(() => undefined),
    );
    await waitForHealth(port, 'mini', (h) => h.inFlight === 4, 15_000, '4 slow calls in flight');
    await waitForHealth(port, 'everything', (h) => (h.inFlight ?? 0) > 0, 15_000, 'echo calls in flight');
    const servers = processesWith(marker);
    expect(servers, 'both servers run').to.have.length(2);
    const pids = Object.values((await health(port)).servers).map((s) => s.pid);
    expect(servers.sort()).to.deep.equal(pids.sort());

    cli.signal('SIGKILL');
    const exit = await cli.exited;
    expect(exit.signal).to.equal('SIGKILL');
    stop();
    const tally = await load;
    await Promise.all(slow);
    expect(tally.counts.ok, describeTally(tally)).to.be.greaterThan(0);
    await waitFor(() => processesWith(marker).length === 0, 10_000, `the server processes ${processesWith(marker).join(', ')} to end after the gateway's SIGKILL`);
  });
});
