import { expect } from 'chai';
import { brotliCompressSync, constants, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { fixture } from '../helpers/paths.js';
import { request, type Answer } from '../helpers/request.js';

const mini = () => ({ command: process.execPath, args: [fixture('proxy-mini.mjs')] });
const LIMIT = 64 * 1024;

const echoCall = (message: string): Buffer =>
  Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { message } } }));

/** What the echo tool answered, from a JSON body or an event stream. */
const echoed = (answer: Answer): string => {
  const json = answer.text.startsWith('{') ? answer.text : answer.text.split('\n').find((l) => l.startsWith('data: {"jsonrpc"'))!.slice(6);
  return (JSON.parse(json) as { result: { content: { text: string }[] } }).result.content[0]!.text;
};

describe('core: Content-Encoding of request bodies (gzip, deflate, br decoded; the body limit applies to the decoded size)', function () {
  this.timeout(30_000);
  let gw: TestGateway;
  let port: number;
  before(async () => {
    gw = await startGateway({ mini: mini() }, { kernel: { bodyLimit: LIMIT } });
    port = gw.kernel.address().port;
  });
  after(() => gw.stop());

  const post = (path: string, body: Buffer, encoding: string, accept = 'application/json, text/event-stream'): Promise<Answer> =>
    request(port, { method: 'POST', path, body, headers: { 'content-type': 'application/json', accept, 'content-encoding': encoding, 'content-length': String(body.length) } });

  for (const [name, encode] of [
    ['gzip', gzipSync],
    ['x-gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const) {
    it(`answers a ${name} body on /{name}/mcp as if it came uncompressed`, async () => {
      const res = await post('/mini/mcp', encode(echoCall(`hello ${name}`)), name);
      expect(res.status, res.text).to.equal(200);
      expect(echoed(res)).to.equal(`hello ${name}`);
    });
  }

  it('takes raw deflate (no zlib header), which some clients send as "deflate"', async () => {
    const res = await post('/mini/mcp', deflateRawSync(echoCall('raw')), 'deflate');
    expect(res.status, res.text).to.equal(200);
    expect(echoed(res)).to.equal('raw');
  });

  it('decodes "gzip, br" (applied in that order) and ignores identity', async () => {
    const res = await post('/mini/mcp', brotliCompressSync(gzipSync(echoCall('twice'))), 'identity, gzip, br');
    expect(res.status, res.text).to.equal(200);
    expect(echoed(res)).to.equal('twice');
  });

  it('decodes the body of POST /{name}/sse too (every route that reads a body)', async () => {
    const res = await post('/mini/sse', gzipSync(echoCall('over sse')), 'gzip');
    expect(res.status, res.text).to.equal(200);
    expect(echoed(res)).to.equal('over sse');
  });

  it('answers an unknown coding with 415, naming it and what to send, and Accept-Encoding listing the codings it takes', async () => {
    const res = await post('/mini/mcp', echoCall('zstd'), 'zstd');
    expect(res.status).to.equal(415);
    expect(res.headers['accept-encoding']).to.equal('gzip, deflate, br');
    expect(res.json()).to.deep.equal({
      error: {
        code: 'FMCP_ERR_UNSUPPORTED_ENCODING',
        message: 'POST /mini/mcp: Content-Encoding "zstd" is not supported: send the body uncompressed, or encoded with gzip, deflate or br',
      },
    });
  });

  const bombs = [
    ['gzip', (b: Buffer) => gzipSync(b)],
    ['deflate', (b: Buffer) => deflateSync(b)],
    ['br', (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } })],
  ] as const;
  for (const [name, encode] of bombs) {
    it(`refuses a ${name} bomb with 413 once the decoded size passes the limit, and still serves the next call`, async () => {
      const bomb = encode(Buffer.alloc(32 * 1024 * 1024, 0x20)); // 32 MiB of spaces in at most 32 KiB
      expect(bomb.length).to.be.below(LIMIT);
      const res = await post('/mini/mcp', bomb, name);
      expect(res.status).to.equal(413);
      expect(res.json()).to.deep.equal({
        error: {
          code: 'FMCP_ERR_BODY_TOO_LARGE_DECODED',
          message: `POST /mini/mcp: the request body decoded from ${name} is larger than the limit of 64 KiB (65536 bytes): send a smaller body`,
        },
      });
      const next = await post('/mini/mcp', encode(echoCall('after the bomb')), name);
      expect(echoed(next)).to.equal('after the bomb');
    });
  }

  it('answers a body that is not what its Content-Encoding says with 400', async () => {
    const res = await post('/mini/mcp', echoCall('not gzip'), 'gzip');
    expect(res.status).to.equal(400);
    expect(res.json<{ error: { code: string; message: string } }>().error).to.deep.equal({
      code: 'FMCP_ERR_BODY_ENCODING',
      message: 'POST /mini/mcp: the request body is not valid gzip data (incorrect header check): send it as its Content-Encoding says, or uncompressed without that header',
    });
  });
});
