import { expect } from 'chai';
import { request as httpRequest } from 'node:http';
import { randomUUID } from 'node:crypto';
import { everythingMetadata, processesWith, runCli, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { waitFor } from '../helpers/request.js';

/** A GET at a full URL with node:http (fetch does not let a test set Origin); status and body. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

describe('cli: the URL fluidmcp run prints for --host', function () {
  this.timeout(30_000);
  const tree = suiteTempTree();
  const marker = `fmcp-host-test-${randomUUID()}`;
  const running: RunningCli[] = [];
  before(() => tree.write('config.json', everythingMetadata(['everything'], marker)));
  afterEach(async () => {
    for (const cli of running.splice(0)) await cli.stop();
    await waitFor(() => processesWith(marker).length === 0, 3000, 'the MCP server processes to end');
  });

  /** Starts the gateway with `host` on port 0 and answers its ready line and the URL in it. */
  async function startOn(host: string[]): Promise<{ line: string; url: string; port: number }> {
    const cli = new RunningCli(['run', '--file', 'config.json', '--start-server', '--port', '0', ...host], { cwd: tree.root });
    running.push(cli);
    const url = await cli.ready();
    const line = cli.stdout.split('\n').find((l) => l.startsWith('FluidMCP gateway ready at'))!;
    return { line, url, port: Number(new URL(url).port) };
  }

  /** /health at the printed URL answers 200 through the Host guard (the Host header is the printed host). */
  async function healthAt(url: string): Promise<void> {
    const res = await get(`${url}/health`);
    expect(res.status, res.text).to.equal(200);
    expect((JSON.parse(res.text) as { servers: Record<string, unknown> }).servers).to.have.property('everything');
  }

  it('keeps http://localhost:<port> for the default host', async () => {
    const { line, port } = await startOn([]);
    expect(line).to.equal(`FluidMCP gateway ready at http://localhost:${port}`);
    await healthAt(`http://localhost:${port}`);
  });

  it('prints a loopback address other than 127.0.0.1 as given, and accepts requests and browser Origins addressed to it', async () => {
    const { line, url, port } = await startOn(['--host', '127.0.0.2']);
    expect(line).to.equal(`FluidMCP gateway ready at http://127.0.0.2:${port}`);
    await healthAt(url);
    // what the console's own requests carry when opened at the printed URL
    expect((await get(`${url}/health`, { origin: `http://127.0.0.2:${port}` })).status).to.equal(200);
    expect((await get(`${url}/health`, { host: 'evil.example' })).status).to.equal(403);
  });

  it('prints an IPv6 loopback in brackets', async () => {
    const { line, url, port } = await startOn(['--host', '::1']);
    expect(line).to.equal(`FluidMCP gateway ready at http://[::1]:${port}`);
    await healthAt(url);
  });

  for (const [host, bound] of [['0', '0.0.0.0'], ['0.0.0.0', '0.0.0.0'], ['::', '::']]) {
    it(`prints localhost for --host ${host} and says it listens on all interfaces`, async () => {
      const { line, url, port } = await startOn(['--host', host!]);
      expect(line).to.equal(`FluidMCP gateway ready at http://localhost:${port} (listening on all interfaces, ${bound})`);
      expect(url).to.equal(`http://localhost:${port}`);
      await healthAt(url);
    });
  }

  it('prints --public-url as given, whatever the host', async () => {
    const { line } = await startOn(['--host', '0.0.0.0', '--public-url', 'https://gw.example.com/']);
    expect(line).to.equal('FluidMCP gateway ready at https://gw.example.com (listening on all interfaces, 0.0.0.0)');
  });

  it('takes an IPv6 literal in brackets, as the ready line writes it', async () => {
    const { line, url, port } = await startOn(['--host', '[::1]']);
    expect(line).to.equal(`FluidMCP gateway ready at http://[::1]:${port}`);
    await healthAt(url);
  });

  it('counts an IPv4-mapped loopback (::ffff:127.0.0.1) as loopback: the printed URL passes the Host and Origin checks and opens the console', async () => {
    const { line, url, port } = await startOn(['--host', '::ffff:127.0.0.1']);
    expect(line).to.equal(`FluidMCP gateway ready at http://[::ffff:127.0.0.1]:${port}`);
    await healthAt(url);
    // a browser's URL parser writes the address as ::ffff:7f00:1 in Origin
    expect((await get(`${url}/health`, { origin: `http://[::ffff:7f00:1]:${port}` })).status).to.equal(200);
    const page = await get(`${url}/`);
    expect(page.status, page.text).to.equal(200);
  });

  for (const host of ['999.1.1.1', '', 'a b', '[::1']) {
    it(`refuses --host "${host}" in the dry run and at start alike: exit 2, one line`, async () => {
      const want = `fluidmcp: --host must be an address to listen on: an IP address (127.0.0.1, ::1, 0.0.0.0 for every interface) or a host name of this machine, got "${host}"`;
      for (const extra of [[], ['--start-server', '--port', '0']]) {
        const res = await runCli(['run', '--file', 'config.json', '--host', host, ...extra], { cwd: tree.root });
        expect(res.code, res.stderr).to.equal(2);
        expect(res.stderr.trim()).to.equal(want);
      }
    });
  }

  for (const [origin, want] of [
    ['*', '--allowed-origin takes one origin per flag, such as https://app.example.com: "*" is not accepted (every web page could then call the gateway from its visitors\' browsers)'],
    ['https://app.example.com/', '--allowed-origin must be an origin as browsers send it: scheme, host and port only, such as https://app.example.com or http://localhost:3000, got "https://app.example.com/"'],
    ['app.example.com', '--allowed-origin must be an origin as browsers send it: scheme, host and port only, such as https://app.example.com or http://localhost:3000, got "app.example.com"'],
  ] as const) {
    it(`refuses --allowed-origin "${origin}", which would never match: exit 2, one line`, async () => {
      const res = await runCli(['run', '--file', 'config.json', '--allowed-origin', origin], { cwd: tree.root });
      expect(res.code, res.stderr).to.equal(2);
      expect(res.stderr.trim()).to.equal(`fluidmcp: ${want}`);
    });
  }
});
