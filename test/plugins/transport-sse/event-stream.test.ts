import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createKernel, definePlugin, EVENT_STREAMS, transportSse, type EventStream, type Kernel } from '../../../index.js';
import type { TransportSseOptions } from '../../../plugins/transport-sse/index.js';
import { waitFor } from '../../helpers/request.js';
import { openSse } from './sse-reader.js';

interface Opened {
  stream: EventStream;
  closes: number;
}

/** A kernel with transport-sse and a test-only plugin whose GET /test/stream opens an event stream. */
async function startStreams(options: TransportSseOptions, onOpen: (opened: Opened, query: URLSearchParams) => void = () => undefined) {
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const opened: Opened[] = [];
  const kernel: Kernel = createKernel({ port: 0, logger: pino({ level: 'debug' }, sink) });
  kernel.use(transportSse(options));
  kernel.use(
    definePlugin({
      name: 'sse-test-streams',
      dependencies: ['transport-sse'],
      register(api) {
        api.route({
          method: 'GET',
          path: '/test/stream',
          handler: (ctx) => {
            const streams = api.resolve(EVENT_STREAMS);
            const stream = streams.open(ctx.res, { headers: { 'x-test': 'yes' } });
            const entry: Opened = { stream, closes: 0 };
            stream.onClose(() => entry.closes++);
            opened.push(entry);
            onOpen(entry, ctx.query);
          },
        });
      },
    }),
  );
  await kernel.start();
  return { kernel, port: kernel.address().port, opened, logLines };
}

describe('transport-sse event streams', () => {
  let stop: (() => Promise<void>) | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await stop?.();
    stop = undefined;
  });

  it('writes the SSE head at once, with the given headers', async () => {
    const gw = await startStreams({});
    stop = () => gw.kernel.stop();
    // nothing is sent on the stream: the head must arrive anyway
    const reading = await openSse(gw.port, '/test/stream');
    expect(reading.status).to.equal(200);
    expect(reading.headers['content-type']).to.equal('text/event-stream');
    expect(reading.headers['cache-control']).to.equal('no-cache');
    expect(reading.headers['connection']).to.equal('keep-alive');
    expect(reading.headers['x-accel-buffering']).to.equal('no');
    expect(reading.headers['x-test']).to.equal('yes');
    reading.close();
  });

  it('numbers events with id and keeps multi-line data whole', async () => {
    const gw = await startStreams({}, ({ stream }) => {
      stream.send('{"a":1}', 'message');
      stream.send('line one\nline two');
      stream.send('third', 'endpoint');
      stream.close('done');
    });
    stop = () => gw.kernel.stop();
    const reading = await openSse(gw.port, '/test/stream');
    expect(await reading.finished).to.equal('end');
    expect(reading.events).to.deep.equal([
      { id: '1', event: 'message', data: '{"a":1}' },
      { id: '2', event: undefined, data: 'line one\nline two' },
      { id: '3', event: 'endpoint', data: 'third' },
    ]);
    expect(reading.text).to.include('data: line one\ndata: line two\n\n');
    expect(gw.opened[0]!.closes).to.equal(1);
    expect(gw.opened[0]!.stream.send('late')).to.equal(false);
  });

  it('sends keep-alive comments while a stream is idle', async () => {
    const gw = await startStreams({ keepAliveMs: 40 });
    stop = () => gw.kernel.stop();
    const reading = await openSse(gw.port, '/test/stream');
    await waitFor(() => reading.comments.length >= 3, 3000, 'three keep-alive comments');
    expect(reading.comments.every((c) => c === 'keep-alive')).to.equal(true);
    expect(reading.events).to.have.length(0);
    reading.close();
  });

  it('ends the stream when the client disconnects; close listeners run once', async () => {
    const gw = await startStreams({ keepAliveMs: 20 });
    stop = () => gw.kernel.stop();
    const reading = await openSse(gw.port, '/test/stream');
    await waitFor(() => gw.opened.length === 1, 2000, 'the stream to open');
    reading.close();
    const opened = gw.opened[0]!;
    await waitFor(() => opened.stream.closed, 2000, 'the stream to close');
    // keep-alive ticks after the close must neither write nor call listeners again
    await new Promise((r) => setTimeout(r, 80));
    opened.stream.close('again');
    expect(opened.closes).to.equal(1);
    expect(opened.stream.send('after')).to.equal(false);
    let lateListener = 0;
    opened.stream.onClose(() => lateListener++);
    await waitFor(() => lateListener === 1, 1000, 'a listener added after the close to run');
  });

  it('closes the stream of a reader that does not read, beyond maxBufferedBytes, and logs why', async () => {
    const limit = 256 * 1024;
    const chunk = 'x'.repeat(64 * 1024);
    let written = 0;
    let writerDone: () => void = () => undefined;
    const writerFinished = new Promise<void>((r) => (writerDone = r));
    const gw = await startStreams({ maxBufferedBytes: limit }, ({ stream }) => {
      const pump = (): void => {
        // a bound for the test itself: far beyond what socket buffers hold on loopback
        for (let i = 0; i < 16; i++) {
          if (written > 512 * 1024 * 1024 || !stream.send(chunk)) {
            writerDone();
            return;
          }
          written += chunk.length;
        }
        setImmediate(pump);
      };
      pump();
    });
    stop = () => gw.kernel.stop();
    const socket = connect(gw.port, '127.0.0.1');
    sockets.push(socket);
    socket.pause(); // never read: the gateway's buffers fill
    socket.write('GET /test/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await writerFinished;
    const opened = gw.opened[0]!;
    expect(opened.stream.closed).to.equal(true);
    expect(opened.closes).to.equal(1);
    expect(written).to.be.below(512 * 1024 * 1024);
    const warning = gw.logLines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).find((l) => l.msg === 'event stream closed' && l.reason?.includes('does not read fast enough'));
    expect(warning, 'a logged reason').to.not.equal(undefined);
    expect(warning!.reason).to.include(`limit of ${limit}`);
  });

  it('ends 20 open streams in preClose, so stop() finishes without forcing connections', async () => {
    const gw = await startStreams({});
    stop = () => gw.kernel.stop();
    const readings = await Promise.all(Array.from({ length: 20 }, () => openSse(gw.port, '/test/stream')));
    await waitFor(() => gw.opened.length === 20, 2000, '20 open streams');
    const started = Date.now();
    await gw.kernel.stop();
    const elapsed = Date.now() - started;
    const ends = await Promise.all(readings.map((r) => r.finished));
    // a clean end of each response, not a connection cut by the kernel's forced close (after 2 s)
    expect(ends).to.deep.equal(Array(20).fill('end'));
    expect(gw.opened.map((o) => o.closes)).to.deep.equal(Array(20).fill(1));
    expect(elapsed).to.be.below(2000);
  });
});
