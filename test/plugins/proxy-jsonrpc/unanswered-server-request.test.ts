import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { everythingEntry, startGateway, type TestGateway } from '../../helpers/gateway.js';

/** A call times out while the server waits for the client's answer to its own request: the error names the client's part. */
describe('proxy-jsonrpc: a call timed out on an unanswered server-to-client request', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ everything: everythingEntry() }, { proxy: { callTimeoutMs: 1500 } });
  });
  after(() => gw.stop());

  it('says the server waited for this client\'s answer to sampling/createMessage, not that the server did not answer', async () => {
    const client = new Client({ name: 'silent-sampler', version: '1.0.0' }, { capabilities: { sampling: {} } });
    const asked: string[] = [];
    let release: () => void = () => {};
    const never = new Promise<void>((resolve) => (release = resolve));
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      asked.push(req.method);
      await never; // the client never answers within the call's timeout
      return { model: 'late', role: 'assistant', content: { type: 'text', text: 'too late' } };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url('/everything/mcp'))));
    try {
      let error: (Error & { code?: number }) | undefined;
      await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'anyone?', maxTokens: 5 } }).catch((err: Error) => (error = err));
      expect(asked).to.deep.equal(['sampling/createMessage']);
      expect(error?.code).to.equal(-32001);
      expect(error?.message).to.equal(
        'MCP error -32001: Server "everything" was waiting for this client\'s answer to its sampling/createMessage request and none came within 1500 ms; the call was cancelled: answer server requests on the session\'s stream',
      );
    } finally {
      release();
      await client.close();
    }
  });
});
