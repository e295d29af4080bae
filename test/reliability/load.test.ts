import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { everythingMetadata, processesWith, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { waitFor } from '../helpers/request.js';
import { describeTally, echoLoad, sleep } from './load-driver.js';
import { reliabilitySeconds } from './process-memory.js';

const CLIENTS = 64;

describe('reliability: steady load through `fluidmcp run`', function () {
  const seconds = reliabilitySeconds();
  this.timeout(seconds * 1000 + 90_000);
  const tree = suiteTempTree();
  const marker = `fmcp-rel-load-${randomUUID()}`;
  let cli: RunningCli;
  let port: number;

  before(async () => {
    const config = tree.write('config.json', everythingMetadata(['everything'], marker));
    cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0']);
    port = Number(new URL(await cli.ready(30_000)).port);
  });

  after(async () => {
    await cli?.stop('SIGTERM');
    await waitFor(() => processesWith(marker).length === 0, 5000, 'the server processes to end');
  });

  // memory figures are the benchmark's (npm run bench reports peak RSS): no RSS bound here
  it(`answers every call of ${CLIENTS} clients with its own payload`, async () => {
    const end = sleep(seconds * 1000);
    const tally = await echoLoad({ port, path: '/everything/mcp', clients: CLIENTS, until: end, timeoutMs: 15_000 });
    const failed = tally.calls - tally.counts.ok;
    console.log(`      load: ${CLIENTS} clients for ${seconds} s through the CLI gateway: ${tally.calls} calls (${Math.round(tally.calls / seconds)}/s), ${failed} failed`);
    expect(failed, describeTally(tally)).to.equal(0);
    expect(tally.calls).to.be.greaterThan(CLIENTS);
    // the gateway still answers after the load
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { servers: { everything: { inFlight: number; state: string } } };
    expect(health.servers.everything.inFlight).to.equal(0);
  });
});
