import { expect } from 'chai';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { everythingMetadata, RunningCli, suiteTempTree } from '../helpers/cli.js';
import { envelope, MODERN, modernPost } from '../helpers/modern.js';
import { everythingServer, repoRoot } from '../helpers/paths.js';
import { parseMetrics, sampleValue } from '../helpers/prometheus.js';
import { freePort, skipWithout, startNginx, startRedis, type NginxServer, type RedisServer } from '../helpers/services.js';

/**
 * "Any replica" for protocol 2026-07-28: two `fluidmcp run` replicas sharing one Redis, behind nginx in
 * plain round-robin (no session map, nothing sticky). A sampling call bridged to MRTR waits in the replica
 * that started it; its retry lands on either replica and is forwarded to the holder when needed.
 */

interface Replica {
  readonly id: string;
  readonly cli: RunningCli;
  /** http://127.0.0.1:<port>, the replica itself, not through nginx */
  readonly direct: string;
  readonly port: number;
}

interface Rpc {
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');
/** The replica a requestState names (its claims are readable; only the holder can check the signature). */
const ALICE = 'alice-key-5b1e9c0d7a3f2468';
const BOB = 'bob-key-2c7d4e9f1a0b3c58';
const holderIn = (state: string): string => (JSON.parse(Buffer.from(state.split('.')[0]!, 'base64url').toString('utf8')) as { r: string }).r;

describe('replicas: MRTR retries reach the replica that holds the call, behind round-robin nginx', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let nginx: NginxServer;
  let front: string;
  let a: Replica;
  let b: Replica;
  const tree = suiteTempTree();
  const started: Replica[] = [];
  let config: string;

  const start = async (id: string, extra: string[] = []): Promise<Replica> => {
    const cli = new RunningCli(['run', '--file', config, '--start-server', '--port', '0', '--replica-id', id, '--metrics', '--no-console', ...extra], { env: { CALC_KEYS: `alice:${ALICE},bob:${BOB}` } });
    const replica = { id, cli, direct: '', port: 0 };
    started.push(replica);
    const port = Number((await cli.waitFor('stdout', /Starting FluidMCP server on port (\d+)\n/, 30_000))[1]);
    await cli.ready(30_000);
    return Object.assign(replica, { port, direct: `http://127.0.0.1:${port}` });
  };

  const forwards = async (r: Replica, outcome: string, pkg = 'everything'): Promise<number> =>
    sampleValue(parseMetrics(await (await fetch(`${r.direct}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()), 'fluidmcp_replica_forwards_total', { package: pkg, outcome }) ?? 0;

  before(async function () {
    skipWithout(this, 'redis-server', 'nginx');
    redis = await startRedis();
    config = tree.write('config.json', {
      mcpServers: {
        ...everythingMetadata(['everything']).mcpServers,
        // a server with auth: the retry's credential must reach the holder, which checks it
        calc: { command: process.execPath, args: [everythingServer, 'stdio'], auth: { type: 'api_key', keys_env: 'CALC_KEYS' } },
      },
      plugins: [join(repoRoot, 'dist', 'examples', 'plugins', 'api-key', 'index.js')],
      stateStore: redis.url(0),
    });
    [a, b] = await Promise.all([start('a'), start('b')]);
    nginx = await startNginx([a, b], { sticky: false });
    front = `http://127.0.0.1:${nginx.port}`;
  });

  after(async () => {
    await Promise.all(started.map((r) => r.cli.stop()));
    await nginx?.stop();
    await redis?.stop();
  });

  it('registers each replica under its id with the address it listens on', async () => {
    for (const r of [a, b]) {
      const line = (await r.cli.waitFor('stderr', /\{[^\n]*replica registered in the shared store[^\n]*\}/, 10_000))[0];
      expect(JSON.parse(line)).to.deep.include({ replica: r.id, url: r.direct });
    }
    expect(nginx.config).to.not.contain('map ');
  });

  it('answers 50 sampling calls of pinned SDK v2 clients through nginx, forwarding the retries that land on the other replica', async () => {
    const before = { a: await forwards(a, 'forwarded'), b: await forwards(b, 'forwarded') };
    const goneBefore = (await forwards(a, 'holder_gone')) + (await forwards(b, 'holder_gone')) + (await forwards(a, 'failed')) + (await forwards(b, 'failed'));
    const lanes = 4;
    const total = 50;
    const clients = await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      const client = new Client({ name: `lane-${lane}`, version: '1' }, { capabilities: { sampling: {} }, versionNegotiation: { mode: { pin: MODERN } } });
      client.setRequestHandler('sampling/createMessage', async (req) => {
        const content = req.params.messages[0]!.content as { text?: string };
        return { model: `model-${lane}`, role: 'assistant', content: { type: 'text', text: `sampled <${content.text ?? ''}>` } };
      });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${front}/everything/mcp`)));
      return client;
    }));
    const answers: string[] = new Array<string>(total);
    try {
      let next = 0;
      await Promise.all(clients.map(async (client, lane) => {
        for (let i = next++; i < total; i = next++) {
          const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: `call-${i}`, maxTokens: 5 } });
          answers[i] = textOf(result);
          expect(answers[i], `call ${i}`).to.include(`sampled <Resource trigger-sampling-request context: call-${i}>`).and.include(`model-${lane}`);
        }
      }));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    expect(answers.filter((t) => t !== undefined)).to.have.length(total);
    const forwarded = (await forwards(a, 'forwarded')) - before.a + (await forwards(b, 'forwarded')) - before.b;
    // round-robin sends about half the retries to the replica that does not hold the call
    expect(forwarded).to.be.greaterThan(0).and.at.most(total);
    const goneAfter = (await forwards(a, 'holder_gone')) + (await forwards(b, 'holder_gone')) + (await forwards(a, 'failed')) + (await forwards(b, 'failed'));
    expect(goneAfter).to.equal(goneBefore);
  });

  it('carries the caller\'s credential to the holder, which checks it: another caller\'s retry is refused there, the caller\'s own completes', async () => {
    const url = (r: Replica) => `${r.direct}/calc/mcp`;
    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'mine', maxTokens: 5 }, _meta: envelope({ sampling: {} }) };
    const first = await modernPost(url(a), 1, 'tools/call', params, { 'x-api-key': ALICE });
    const state = (first.json as Rpc).result!.requestState as string;
    expect(holderIn(state)).to.equal('a');
    const retry = (text: string) => ({ ...params, requestState: state, inputResponses: { 'sampling-1': { model: 'm', role: 'assistant', content: { type: 'text', text } } } });
    const before = await forwards(b, 'forwarded', 'calc');
    expect((await modernPost(url(b), 2, 'tools/call', retry('no key'))).status).to.equal(401);
    const stolen = await modernPost(url(b), 3, 'tools/call', retry('stolen'), { 'x-api-key': BOB });
    expect((stolen.json as Rpc).error?.message, stolen.text).to.equal('Invalid Request: requestState belongs to another caller');
    // the holder, which keeps the call, also refuses a retry with other arguments
    const changed = await modernPost(url(b), 5, 'tools/call', { ...retry('changed'), arguments: { prompt: 'CHANGED0', maxTokens: 5 } }, { 'x-api-key': ALICE });
    expect((changed.json as Rpc).error?.code, changed.text).to.equal(-32602);
    expect((changed.json as Rpc).error?.message).to.match(/^Invalid params: this retry's params differ from those of the original tools\/call request/);
    const own = await modernPost(url(b), 4, 'tools/call', retry('own answer'), { 'x-api-key': ALICE });
    expect(textOf((own.json as Rpc).result), own.text).to.include('own answer');
    // the request without a key never left b; the three others were forwarded to a
    expect(await forwards(b, 'forwarded', 'calc')).to.equal(before + 3);
  });

  describe('when the replica that holds the call is gone', () => {
    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'orphan', maxTokens: 5 }, _meta: envelope({ sampling: {} }) };
    const answer = { 'sampling-1': { model: 'm', role: 'assistant', content: { type: 'text', text: 'too late' } } };
    const gone = (id: string): string =>
      `Invalid Request: the replica "${id}" that holds the call this requestState continues is gone`;

    it('answers the retry on another replica with a clear error once the holder stopped', async () => {
      const c = await start('c');
      const first = await modernPost(`${c.direct}/everything/mcp`, 1, 'tools/call', params);
      const result = (first.json as Rpc).result!;
      expect(result.resultType, first.text).to.equal('input_required');
      const state = result.requestState as string;
      expect(holderIn(state)).to.equal('c');
      const stopped = await c.cli.stop();
      expect(stopped.code).to.equal(0);
      const goneBefore = await forwards(b, 'holder_gone');
      const retry = await modernPost(`${b.direct}/everything/mcp`, 2, 'tools/call', { ...params, inputResponses: answer, requestState: state });
      expect(retry.status).to.equal(200);
      const error = (retry.json as Rpc).error!;
      expect(error.code).to.equal(-32600);
      expect(error.message).to.equal(`${gone('c')} (it is no longer registered: it stopped or was removed); retry the original request without requestState`);
      expect(await forwards(b, 'holder_gone')).to.equal(goneBefore + 1);
    });

    it('answers a clear error, not a hang, when the holder is registered but no longer accepts connections', async () => {
      // a replica that died without leaving the directory: its entry names an address where nothing listens
      const deadPort = await freePort();
      const d = await start('d', ['--replica-url', `http://127.0.0.1:${deadPort}`]);
      try {
        const first = await modernPost(`${d.direct}/everything/mcp`, 1, 'tools/call', params);
        const state = (first.json as Rpc).result!.requestState as string;
        expect(holderIn(state)).to.equal('d');
        const retry = await modernPost(`${a.direct}/everything/mcp`, 2, 'tools/call', { ...params, inputResponses: answer, requestState: state });
        expect((retry.json as Rpc).error?.message, retry.text).to.equal(`${gone('d')} (it no longer accepts connections at the address it registered; if it is running, its --replica-url is wrong: the log names the address); retry the original request without requestState`);
      } finally {
        await d.cli.stop();
      }
    });

    it('never forwards a retry twice: a request already forwarded once is answered where it lands', async () => {
      const first = await modernPost(`${a.direct}/everything/mcp`, 1, 'tools/call', params);
      const state = (first.json as Rpc).result!.requestState as string;
      expect(holderIn(state)).to.equal('a');
      const looped = await modernPost(`${b.direct}/everything/mcp`, 2, 'tools/call', { ...params, inputResponses: answer, requestState: state }, { 'fluidmcp-forwarded-by': 'x' });
      expect((looped.json as Rpc).error?.message).to.contain('requestState names replica "a", but the replica "x" forwarded it to "b"');
      // the call still waits at its holder: the real retry completes it
      const done = await modernPost(`${front}/everything/mcp`, 3, 'tools/call', { ...params, inputResponses: answer, requestState: state });
      expect(textOf((done.json as Rpc).result), done.text).to.include('too late');
    });
  });
});
