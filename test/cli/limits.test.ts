import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { errorLines, everythingMetadata, processesWith, RunningCli, runCli, suiteTempTree } from '../helpers/cli.js';
import { waitFor } from '../helpers/request.js';

describe('cli: session and process limits from the command line', function () {
  this.timeout(60_000);
  const tree = suiteTempTree();
  const marker = `fmcp-limits-test-${randomUUID()}`;
  const running: RunningCli[] = [];
  const clients: Client[] = [];
  before(() => {
    tree.write('config.json', everythingMetadata(['everything'], marker));
    const isolated = everythingMetadata(['isolated'], marker);
    tree.write('isolated.json', { mcpServers: { isolated: { ...isolated.mcpServers.isolated, isolation: 'session' } } });
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close().catch(() => undefined);
    for (const cli of running.splice(0)) await cli.stop();
    await waitFor(() => processesWith(marker).length === 0, 5000, 'the MCP server processes to end');
  });

  async function start(args: string[], env: Record<string, string> = {}): Promise<string> {
    const cli = new RunningCli(['run', '--start-server', '--port', '0', ...args], { cwd: tree.root, env });
    running.push(cli);
    return cli.ready();
  }

  /** An SDK v1 client connected (initialize and notifications/initialized) to `url`. */
  async function connect(url: string): Promise<Client> {
    const client = new Client({ name: 'limits-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    return client;
  }

  /** The SDK's error for a refused initialize: the HTTP status and the gateway's JSON-RPC error message. */
  async function refusal(url: string): Promise<{ status: number | undefined; message: string }> {
    const error = await connect(url).then(() => undefined, (err: unknown) => err as Error & { code?: number });
    expect(error, 'the connection was refused').to.be.instanceOf(Error);
    const body = /Error POSTing to endpoint: (\{.*\})$/s.exec(error!.message)?.[1];
    expect(body, error!.message).to.be.a('string');
    return { status: error!.code, message: (JSON.parse(body!) as { error: { message: string } }).error.message };
  }

  it('--max-sessions 2: two sessions open, the third initialize gets the session limit error naming the flag', async () => {
    const base = await start(['--file', 'config.json', '--max-sessions', '2']);
    const url = `${base}/everything/mcp`;
    const one = await connect(url);
    const two = await connect(url);
    expect((await one.listTools()).tools.map((t) => t.name)).to.include('echo');
    expect((await two.listTools()).tools.map((t) => t.name)).to.include('echo');
    const { status, message } = await refusal(url);
    expect(status).to.equal(503);
    expect(message).to.equal('Session limit reached: the gateway holds 2 sessions (--max-sessions, proxy option maxSessions), all in use, so /everything/mcp opened no new one: retry after the time in Retry-After, or call without a session (a JSON-RPC POST without initialize, or protocol 2026-07-28)');
    // the two in use go on
    expect(await one.callTool({ name: 'echo', arguments: { message: 'still here' } })).to.deep.include({ content: [{ type: 'text', text: 'Echo: still here' }] });
  });

  it('FMCP_MAX_SESSIONS_PER_ADDRESS=1: a second session from the same address gets 429 naming the flag', async () => {
    const base = await start(['--file', 'config.json'], { FMCP_MAX_SESSIONS_PER_ADDRESS: '1' });
    const url = `${base}/everything/mcp`;
    await connect(url);
    const { status, message } = await refusal(url);
    expect(status).to.equal(429);
    expect(message).to.include('Too many sessions from 127.0.0.1: it holds 1 (--max-sessions-per-address, proxy option maxSessionsPerAddress)');
  });

  it('--max-instances 1 and --instance-evict-idle-ms 45000: a second isolated session gets the process limit error with both', async () => {
    const base = await start(['--file', 'isolated.json', '--max-instances', '1', '--instance-evict-idle-ms', '45000']);
    const url = `${base}/isolated/mcp`;
    await connect(url);
    const { status, message } = await refusal(url);
    expect(status).to.equal(503);
    expect(message).to.equal('Server "isolated" has 1 processes busy (limit: --max-instances, proxy option maxInstances), each with a call in flight, an open stream or a message in the last 45 s, so no process was started for this one: retry after the time in Retry-After, or raise --max-instances (maxInstances)');
  });

  it('--call-timeout-ms 1500: a call the server does not answer in time ends with the timeout error', async () => {
    const base = await start(['--file', 'config.json', '--call-timeout-ms', '1500']);
    const client = await connect(`${base}/everything/mcp`);
    const error = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 1 } }, undefined, { timeout: 20_000 })
      .then(() => undefined, (err: unknown) => err as Error);
    expect(error?.message).to.equal('MCP error -32001: Server "everything" did not answer within 1500 ms; the call was cancelled');
  });

  for (const [args, env, line] of [
    [['--max-sessions', '0'], {}, 'fluidmcp: --max-sessions must be a whole number of 1 or more, got "0"'],
    [['--max-instances', 'many'], {}, 'fluidmcp: --max-instances must be a whole number of 1 or more, got "many"'],
    [['--call-timeout-ms', '1.5'], {}, 'fluidmcp: --call-timeout-ms must be a whole number of 1 or more, got "1.5"'],
    [['--max-sessions-per-address', '-1'], {}, 'fluidmcp: --max-sessions-per-address must be a whole number of 0 or more, got "-1"'],
    [[], { FMCP_INSTANCE_EVICT_IDLE_MS: '1m' }, 'fluidmcp: FMCP_INSTANCE_EVICT_IDLE_MS must be a whole number of 1 or more, got "1m"'],
  ] as const) {
    it(`${[...args, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join(' ')}: exit 2 with one line naming it`, async () => {
      const result = await runCli(['run', '--file', 'config.json', '--start-server', '--port', '0', ...args], { cwd: tree.root, env: { ...env } });
      expect(result.code).to.equal(2);
      expect(errorLines(result.stderr)).to.deep.equal([line]);
      expect(result.stdout).to.not.contain('ready at');
    });
  }
});
