import { expect } from 'chai';
import type { Measurement } from '../../bench/load.js';
import { formatReport, unmetGoals, type Goal } from '../../bench/report.js';

/** One ok measurement of the steady workload at 32 clients. */
function row(target: string, client: 'raw' | 'agent' | '-', round: number, rate: number): Measurement {
  return {
    workload: 'steady', target, clients: 32, client, round, status: 'ok', ok: rate * 4, errors: 0, seconds: 4, rate,
    p50Ms: 1, p99Ms: 2, setupSeconds: 0.1, errorSamples: [], driverCpuPct: 30,
  };
}

/** Three rounds of direct, gateway, mcp-proxy and relay with the raw client at the given rates. */
function run(rates: { direct: number; gateway: number; mcpProxy: number; relay?: number }): Measurement[] {
  const rows: Measurement[] = [];
  for (const round of [1, 2, 3]) {
    rows.push(row('direct', '-', round, rates.direct), row('gateway', 'raw', round, rates.gateway), row('mcp-proxy', 'raw', round, rates.mcpProxy));
    if (rates.relay !== undefined) rows.push(row('relay', 'raw', round, rates.relay));
  }
  return rows;
}

const find = (goals: Goal[], text: string): Goal => {
  const goal = goals.find((g) => g.what.includes(text));
  if (!goal) throw new Error(`no goal "${text}" among: ${goals.map((g) => g.what).join('; ')}`);
  return goal;
};

describe('bench --check: goals against the relay ceiling (bench/report.ts)', () => {
  it('a 32-client goal the relay misses too is BEYOND CEILING, and the gateway is held to 85% of the relay instead', () => {
    const { text, goals } = formatReport(run({ direct: 30_000, gateway: 10_000, mcpProxy: 2_000, relay: 10_500 }), 'test', ['raw']);
    const ofMcpProxy = find(goals, 'gateway >= 8x mcp-proxy');
    expect(ofMcpProxy.pass).to.equal(false);
    expect(ofMcpProxy.beyondCeiling).to.equal(true);
    expect(text).to.include('[BEYOND CEILING] [raw client] 32 clients: gateway >= 8x mcp-proxy: median 5.0x; the relay itself: 5.3x');
    expect(find(goals, 'gateway >= 40% of direct').beyondCeiling).to.equal(true);
    const ofRelay = find(goals, 'of the relay');
    expect(ofRelay.pass).to.equal(true);
    expect(ofRelay.detail).to.equal('median 95.2%');
    // only the goals not measured in this run (1 and 128 clients) are unmet
    expect(unmetGoals(goals).map((g) => g.what)).to.deep.equal(goals.filter((g) => g.pass === undefined).map((g) => g.what));
  });

  it('the gateway below 85% of the relay fails the check even when the goals are beyond the ceiling', () => {
    const { text, goals } = formatReport(run({ direct: 30_000, gateway: 7_000, mcpProxy: 2_000, relay: 10_000 }), 'test', ['raw']);
    expect(find(goals, 'of the relay').pass).to.equal(false);
    expect(text).to.include('[FAIL] [raw client] 32 clients: gateway >= 85% of the relay (in place of the goals beyond it): median 70.0%');
    expect(unmetGoals(goals).map((g) => g.what)).to.include('[raw client] 32 clients: gateway >= 85% of the relay (in place of the goals beyond it)');
  });

  it('a goal the relay reaches is a plain FAIL when the gateway misses it, and no relay goal is added', () => {
    const { text, goals } = formatReport(run({ direct: 30_000, gateway: 10_000, mcpProxy: 1_000, relay: 25_000 }), 'test', ['raw']);
    expect(text).to.include('[FAIL] [raw client] 32 clients: gateway >= 40% of direct: median 33.3%');
    expect(find(goals, 'gateway >= 40% of direct').beyondCeiling).to.equal(undefined);
    expect(find(goals, 'gateway >= 8x mcp-proxy').pass).to.equal(true);
    expect(goals.some((g) => g.what.includes('of the relay'))).to.equal(false);
    expect(unmetGoals(goals).map((g) => g.what)).to.include('[raw client] 32 clients: gateway >= 40% of direct');
  });

  it('without a relay in the run the goals are plain goals', () => {
    const { goals } = formatReport(run({ direct: 30_000, gateway: 10_000, mcpProxy: 2_000 }), 'test', ['raw']);
    expect(find(goals, 'gateway >= 8x mcp-proxy').beyondCeiling).to.equal(undefined);
    expect(unmetGoals(goals).map((g) => g.what)).to.include('[raw client] 32 clients: gateway >= 8x mcp-proxy');
  });
});
