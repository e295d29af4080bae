import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { until } from '../../helpers/request.js';

/**
 * A server that answers initialize, tools/list and its first tools/call (with its pid), then stays alive
 * and silent on every later call; with HEARTBEAT set it keeps sending a log notification meanwhile.
 */
const HANGS = `
import { createInterface } from 'node:readline';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
let calls = 0;
if (process.env.HEARTBEAT) setInterval(() => out({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'busy' } }), 50);
else setInterval(() => undefined, 60_000);
process.stdin.on('end', () => process.exit(0));
createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.id === undefined || msg.method === undefined) return;
  const reply = (result) => out({ jsonrpc: '2.0', id: msg.id, result });
  if (msg.method === 'initialize') return reply({ protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'hangs', version: '1' } });
  if (msg.method === 'tools/list') return reply({ tools: [{ name: 'pid', inputSchema: { type: 'object' } }] });
  if (msg.method === 'tools/call' && ++calls === 1) return reply({ content: [{ type: 'text', text: String(process.pid) }] });
});
`;

type Rpc = { id: unknown; result?: { content: { text: string }[] }; error?: { code: number; message: string } };
type Health = { state: string; restarts: number; pid?: number; lastError?: string; inFlight: number };

const callPid = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'pid', arguments: {} } });
const TIMED_OUT = { code: -32001, message: 'Server "hang" did not answer within 300 ms; the call was cancelled' };
const STOPPED_ANSWERING = 'stopped answering (3 calls in a row had no answer within 300 ms, and it sent nothing meanwhile), so the gateway ended it';

describe('proxy-jsonrpc + transport-stdio: a server that hangs is restarted', function () {
  this.timeout(60_000);
  let dir: string;
  let gw: TestGateway | undefined;
  const warnings: { msg: string; level: number }[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fmcp-hang-'));
    writeFileSync(join(dir, 'hangs.mjs'), HANGS);
    warnings.length = 0;
  });
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (env: Record<string, string> = {}): Promise<TestGateway> => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as (typeof warnings)[number]) });
    gw = await startGateway({ hang: { command: process.execPath, args: [join(dir, 'hangs.mjs')], env } }, { proxy: { callTimeoutMs: 300 }, kernel: { logger } });
    return gw;
  };
  // JSON only: the heartbeat's notifications would otherwise turn the answer into an event stream
  const call = async (g: TestGateway, id: number): Promise<Rpc> => (await postJson(g.url('/hang/mcp'), callPid(id), { accept: 'application/json' })).json as Rpc;
  const health = async (g: TestGateway): Promise<Health> => ((await (await fetch(g.url('/health'))).json()) as { servers: { hang: Health } }).servers.hang;

  it(`after 3 calls in a row meet only silence, ends the process and starts a fresh one: calls in flight are told why, one warning, /health shows it`, async () => {
    const g = await start();
    const first = await call(g, 1);
    const pid = Number(first.result!.content[0]!.text);
    expect((await call(g, 2)).error).to.deep.equal(TIMED_OUT);
    expect((await call(g, 3)).error).to.deep.equal(TIMED_OUT);
    // the third silent timeout restarts it: that call and the one in flight beside it get the reason
    const [third, beside] = await Promise.all([call(g, 4), call(g, 5)]);
    const restarted = { code: -32000, message: `Server "hang" is unavailable: the process ${STOPPED_ANSWERING}; it is restarting, retry the call` };
    expect([third.id, third.error]).to.deep.equal([4, restarted]);
    expect([beside.id, beside.error]).to.deep.equal([5, restarted]);

    const after = await until(async () => {
      const h = await health(g);
      return h.state === 'up' && h.restarts === 1 ? h : undefined;
    }, 15_000, 'the server to be up again after its restart');
    expect(after.lastError).to.equal(`process ${pid} (command "${process.execPath}") ${STOPPED_ANSWERING}`);
    expect(after.pid).to.not.equal(pid);
    expect(() => process.kill(pid, 0)).to.throw(/ESRCH/);
    // the fresh process answers
    expect(Number((await call(g, 6)).result!.content[0]!.text)).to.equal(after.pid);
    expect(warnings.map((w) => [w.level, w.msg])).to.deep.equal([[40, `server ${STOPPED_ANSWERING}: restarting it`]]);
  });

  it('a server that keeps sending messages is not hung, however many of its calls time out', async () => {
    const g = await start({ HEARTBEAT: '1' });
    const pid = Number((await call(g, 1)).result!.content[0]!.text);
    for (let id = 2; id <= 5; id++) expect((await call(g, id)).error).to.deep.equal(TIMED_OUT);
    expect(await health(g)).to.deep.include({ state: 'up', restarts: 0, pid });
    expect(warnings).to.deep.equal([]);
  });
});
