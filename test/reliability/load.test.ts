import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { everythingMetadata, processesWith, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { waitFor } from '../helpers/request.js';
import { describeTally, echoLoad, sleep } from './load-driver.js';
import { mb, reliabilitySeconds, rssBytes } from './process-memory.js';

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

  it(`answers every call of ${CLIENTS} clients with its own payload, and RSS stays within 20% of its warm-up level`, async () => {
    // warm-up: long enough for V8's heap and the socket pool to reach their working size
    const warmupMs = Math.min(10_000, Math.max(2_000, (seconds * 1000) / 6));
    const end = sleep(seconds * 1000);
    let rssAfterWarmup = 0;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(cli.pid))), 250);
    const warm = sleep(warmupMs).then(() => (rssAfterWarmup = rssBytes(cli.pid)));
    let tally;
    try {
      tally = await echoLoad({ port, path: '/everything/mcp', clients: CLIENTS, until: end, timeoutMs: 15_000 });
    } finally {
      clearInterval(sampler);
    }
    await warm;
    const rssAtEnd = rssBytes(cli.pid);
    peak = Math.max(peak, rssAtEnd);
    const growth = (rssAtEnd - rssAfterWarmup) / rssAfterWarmup;
    const failed = tally.calls - tally.counts.ok;
    console.log(
      `      load: ${CLIENTS} clients for ${seconds} s through the CLI gateway: ${tally.calls} calls (${Math.round(tally.calls / seconds)}/s), ${failed} failed; ` +
        `gateway RSS after ${warmupMs / 1000} s warm-up ${mb(rssAfterWarmup)}, at end ${mb(rssAtEnd)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%), peak ${mb(peak)}`,
    );
    expect(failed, describeTally(tally)).to.equal(0);
    expect(tally.calls).to.be.greaterThan(CLIENTS);
    expect(rssAtEnd, `RSS ${mb(rssAtEnd)} at the end vs ${mb(rssAfterWarmup)} after warm-up`).to.be.at.most(rssAfterWarmup * 1.2);
    // the gateway still answers after the load
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { servers: { everything: { inFlight: number; state: string } } };
    expect(health.servers.everything.inFlight).to.equal(0);
  });
});
