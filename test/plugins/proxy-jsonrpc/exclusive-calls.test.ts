import { expect } from 'chai';
import { pino } from 'pino';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';
import { envelope, MODERN, modernPost } from '../../helpers/modern.js';

interface Rpc {
  id?: unknown;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

const textOf = (result: unknown): string => (((result as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');

/** A tools/call that declares sampling, as the newcomer sent it: its server asks the client to sample. */
const sampling = (prompt: string): Record<string, unknown> => ({ name: 'trigger-sampling-request', arguments: { prompt, maxTokens: 5 }, _meta: envelope({ sampling: {} }) });

const refusalText = (retryAfter: number): string =>
  'Server "everything" has all 4 processes busy that serve this caller\'s 2026-07-28 calls declaring sampling, elicitation or roots (limit: 4 per server and caller, one call each), ' +
  'each with a call in flight or waiting for its client\'s answer to input_required, and none was freed within 3000 ms: ' +
  'complete the pending input_required rounds (retry each with its inputResponses) or abandon them (a round without a retry ends after inputTimeoutMs), ' +
  `then retry this call after ${retryAfter} s (Retry-After), or send it without those capabilities`;

describe('proxy-jsonrpc: exclusive processes for 2026-07-28 calls that may cause server requests', function () {
  let gw: TestGateway;
  let url: string;
  const logged: Record<string, unknown>[] = [];
  const warnings = () => logged.filter((l) => String(l.msg).startsWith('exclusive process limit reached'));

  beforeEach(async () => {
    logged.length = 0;
    const logger = pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) });
    gw = await startGateway({ everything: everythingEntry() }, { kernel: { logger } });
    url = gw.url('/everything/mcp');
  });
  afterEach(() => gw.stop());

  /** Four input_required rounds nobody completes: they hold every exclusive process. */
  async function holdAll(): Promise<{ state: string; params: Record<string, unknown> }[]> {
    const held = [];
    for (let id = 1; id <= 4; id++) {
      const params = sampling(`held ${id}`);
      const res = await modernPost(url, id, 'tools/call', params);
      expect(res.status, res.text).to.equal(200);
      const result = (res.json as Rpc).result!;
      expect(result.resultType).to.equal('input_required');
      held.push({ state: result.requestState as string, params });
    }
    return held;
  }

  it('refuses a call when all 4 are held by rounds waiting for input: 503, Retry-After and what to do, one warning naming the server', async () => {
    const held = await holdAll();

    const refused = await modernPost(url, 5, 'tools/call', sampling('fifth'));
    expect(refused.status, refused.text).to.equal(503);
    const retryAfter = Number(refused.headers.get('retry-after'));
    // the oldest held round ends at the latest callTimeoutMs (60 s) after it was sent
    expect(retryAfter).to.be.within(1, 60);
    expect(refused.json).to.deep.equal({
      jsonrpc: '2.0',
      id: 5,
      error: { code: -32000, message: refusalText(retryAfter), data: { limit: 4, retryAfterSeconds: retryAfter } },
    });
    // a call without those capabilities still runs, on the shared process
    const echo = await modernPost(url, 6, 'tools/call', { name: 'echo', arguments: { message: 'still served' } });
    expect(textOf((echo.json as Rpc).result)).to.equal('Echo: still served');

    const again = await modernPost(url, 7, 'tools/call', sampling('seventh'));
    expect(again.status).to.equal(503);
    expect(warnings().map((w) => [w.level, w.server, w.refused])).to.deep.equal([[40, 'everything', 1]]);
    expect(warnings()[0]!.msg).to.equal('exclusive process limit reached: server "everything" has all 4 processes for a caller\'s 2026-07-28 calls declaring sampling, elicitation or roots busy (calls in flight or waiting for their client\'s input_required answer); refused 1 calls with 503 (since the last warning): clients should complete or abandon their input_required rounds');

    // completing a round frees its process for the next call
    const answer = { 'sampling-1': { model: 'm', role: 'assistant', content: { type: 'text', text: 'done at last' } } };
    const done = await modernPost(url, 8, 'tools/call', { ...held[0]!.params, requestState: held[0]!.state, inputResponses: answer });
    expect((done.json as Rpc).result!.resultType).to.equal('complete');
    expect(textOf((done.json as Rpc).result)).to.include('done at last');
    const next = await modernPost(url, 9, 'tools/call', sampling('ninth'));
    expect(next.status).to.equal(200);
    expect((next.json as Rpc).result!.resultType).to.equal('input_required');
  });

  it('tells an SDK v2 client the same at once', async () => {
    await holdAll();
    const client = new Client({ name: 'late', version: '1' }, { capabilities: { sampling: {} }, versionNegotiation: { mode: { pin: MODERN } } });
    client.setRequestHandler('sampling/createMessage', async () => ({ model: 'm', role: 'assistant', content: { type: 'text', text: 'never asked' } }));
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    try {
      const error = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'late', maxTokens: 5 } }).then(() => undefined, (err: Error) => err);
      // the SDK quotes the body it was answered
      expect(error?.message).to.include('has all 4 processes busy that serve this caller\'s 2026-07-28 calls declaring sampling, elicitation or roots');
    } finally {
      await client.close();
    }
  });
});
