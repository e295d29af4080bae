import { expect } from 'chai';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { fixture } from '../../helpers/paths.js';
import { postJson, startGateway, type TestGateway } from '../../helpers/gateway.js';

const mini = (extra: Record<string, unknown> = {}) => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')], ...extra });
const call = (id: unknown, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
type Rpc = { result?: { content: { text: string }[] } };

/** Opens the session's GET stream and collects the data lines it receives. */
function openStream(gw: TestGateway, path: string, session: string): Promise<{ lines: string[]; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(gw.url(path), { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': session } }, (res) => {
      const lines: string[] = [];
      res.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n').filter((l) => l.startsWith('data: '))));
      resolve({ lines, res });
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('proxy-jsonrpc routing of server messages', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ shared: mini(), isolated: mini({ isolation: 'session' }) });
  });
  after(() => gw.stop());

  it('sends list-changed notifications to every session of the server', async () => {
    const a = (await postJson(gw.url('/shared/mcp'), init)).headers.get('mcp-session-id')!;
    const b = (await postJson(gw.url('/shared/mcp'), init)).headers.get('mcp-session-id')!;
    const [sa, sb] = await Promise.all([openStream(gw, '/shared/mcp', a), openStream(gw, '/shared/mcp', b)]);
    await postJson(gw.url('/shared/mcp'), call(1, 'changed'), { 'mcp-session-id': a });
    await until(() => sa.lines.length > 0 && sb.lines.length > 0);
    for (const s of [sa, sb]) {
      expect(JSON.parse(s.lines[0]!.slice(6))).to.deep.equal({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
      s.res.destroy();
    }
  });

  it('shares one process between sessions by default, and gives each session its own with isolation "session"', async () => {
    const pidOf = async (path: string, session: string) => ((await postJson(gw.url(path), call(2, 'pid'), { 'mcp-session-id': session })).json as Rpc).result!.content[0]!.text;
    const open = async (path: string) => (await postJson(gw.url(path), init)).headers.get('mcp-session-id')!;
    const [s1, s2] = [await open('/shared/mcp'), await open('/shared/mcp')];
    expect(await pidOf('/shared/mcp', s1)).to.equal(await pidOf('/shared/mcp', s2));
    const [i1, i2] = [await open('/isolated/mcp'), await open('/isolated/mcp')];
    const [p1, p2] = [await pidOf('/isolated/mcp', i1), await pidOf('/isolated/mcp', i2)];
    expect(p1).to.not.equal(p2);
    // ending the session stops its process
    await fetch(gw.url('/isolated/mcp'), { method: 'DELETE', headers: { 'mcp-session-id': i1 } });
    await until(() => {
      try {
        process.kill(Number(p1), 0);
        return false;
      } catch {
        return true;
      }
    }, 8000);
  });
});
