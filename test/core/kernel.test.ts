import { expect } from 'chai';
import { pino } from 'pino';
import { container as rootContainer } from 'tsyringe';
import {
  createKernel,
  defineToken,
  definePlugin,
  errors,
  sendJson,
  type AuthStrategy,
  type Kernel,
  type KernelOptions,
  type Plugin,
  type PluginApi,
  type ServerDefinition,
  type TransportFactory,
} from '../../core/index.js';
import { maxHeaderSize } from 'node:http';
import { request, waitFor } from '../helpers/request.js';
import { rawRequest, type RawAnswer } from '../reliability/raw-http.js';

const silent = pino({ level: 'silent' });

function kernelWith(plugins: Plugin[], options: KernelOptions = {}): Kernel {
  const kernel = createKernel({ port: 0, logger: silent, ...options });
  for (const p of plugins) kernel.use(p);
  return kernel;
}

const routes = (...list: ((api: PluginApi) => void)[]): Plugin =>
  definePlugin({ name: 'test-routes', register: (api) => list.forEach((fn) => fn(api)) });

/** A transport that claims every entry and never starts anything: the kernel only needs a claim. */
const inertTransport: TransportFactory = {
  kind: 'inert',
  claims: () => true,
  create: () => {
    throw new Error('not used in kernel tests');
  },
};

function server(name: string, auth?: { type: string; flow?: string }): ServerDefinition {
  return { name, entry: { command: 'true', ...(auth ? { auth } : {}) }, source: '/virtual/metadata.json', dir: '/virtual', transport: '' };
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error) => err,
  );
}

function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('core/kernel', () => {
  let kernel: Kernel | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  describe('request bodies', () => {
    let port: number;
    beforeEach(async () => {
      kernel = kernelWith(
        [
          routes((api) => {
            api.route({ method: 'POST', path: '/echo', handler: (ctx) => sendJson(ctx.res, 200, { bytes: ctx.body?.length }) });
            api.route({ method: 'POST', path: '/small', bodyLimit: 10, handler: (ctx) => sendJson(ctx.res, 200, { bytes: ctx.body?.length }) });
          }),
        ],
        { bodyLimit: 1000 },
      );
      await kernel.start();
      port = kernel.address().port;
    });

    it('reads a body within the limit', async () => {
      const res = await request(port, { method: 'POST', path: '/echo', body: 'x'.repeat(1000) });
      expect(res.json()).to.deep.equal({ bytes: 1000 });
    });

    it('answers 413 JSON when the declared Content-Length is over the limit', async () => {
      const res = await request(port, { method: 'POST', path: '/echo', body: 'x'.repeat(1001) });
      expect(res.status).to.equal(413);
      expect(res.headers.connection).to.equal('close');
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_BODY_TOO_LARGE', message: 'POST /echo: the request body is larger than the limit of 1000 bytes: send a smaller body' } });
    });

    it('answers 413 when a chunked body grows over the limit while streaming', async () => {
      const res = await request(port, { method: 'POST', path: '/echo', chunks: Array.from({ length: 6 }, () => 'y'.repeat(400)) });
      expect(res.headers['transfer-encoding']).to.equal(undefined);
      expect(res.status).to.equal(413);
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_BODY_TOO_LARGE', message: 'POST /echo: the request body is larger than the limit of 1000 bytes: send a smaller body' } });
    });

    it('names the limit in KiB or MiB as well as bytes, and leaves the query out of the place', async () => {
      const kib = kernelWith([routes((api) => api.route({ method: 'POST', path: '/up', bodyLimit: 64 * 1024, handler: (ctx) => sendJson(ctx.res, 200, {}) }))], { bodyLimit: 4 * 1024 * 1024 });
      await kib.start();
      try {
        const res = await request(kib.address().port, { method: 'POST', path: '/up?session=secret', body: 'x'.repeat(64 * 1024 + 1) });
        expect(res.status).to.equal(413);
        expect(res.json()).to.deep.equal({
          error: { code: 'FMCP_ERR_BODY_TOO_LARGE', message: 'POST /up: the request body is larger than the limit of 64 KiB (65536 bytes): send a smaller body' },
        });
      } finally {
        await kib.stop();
      }
    });

    it('applies a route\'s own body limit', async () => {
      expect((await request(port, { method: 'POST', path: '/small', body: '0123456789' })).status).to.equal(200);
      const res = await request(port, { method: 'POST', path: '/small', body: '0123456789a' });
      expect(res.status).to.equal(413);
      expect(res.json<{ error: { message: string } }>().error.message).to.contain('10 bytes');
    });
  });

  describe('requests node:http cannot read (clientError)', () => {
    let port: number;
    beforeEach(async () => {
      kernel = kernelWith([routes((api) => api.route({ method: 'GET', path: '/ok', handler: (ctx) => sendJson(ctx.res, 200, {}) }))], {
        headersTimeout: 500,
        requestTimeout: 2000,
      });
      await kernel.start();
      port = kernel.address().port;
    });

    /** The answer's JSON error, after checking it is a whole JSON answer that closes the connection. */
    function jsonError(answer: RawAnswer): unknown {
      expect(answer.headers['content-type']).to.equal('application/json');
      expect(answer.headers['content-length']).to.equal(String(Buffer.byteLength(answer.body)));
      expect(answer.headers.connection).to.equal('close');
      expect(answer.headers['x-content-type-options']).to.equal('nosniff');
      return JSON.parse(answer.body);
    }

    const headersTooLarge = {
      error: {
        code: 'FMCP_ERR_HEADERS_TOO_LARGE',
        message: `The request headers (URL included) are larger than the limit of ${maxHeaderSize / 1024} KiB (${maxHeaderSize} bytes): send a shorter URL or fewer/smaller headers (a token that large is not a normal access token)`,
      },
    };

    it('answers a 30 KB Authorization header with 431 and a JSON body saying the limit and what to do', async () => {
      const answer = await rawRequest(port, { target: '/ok', headers: { authorization: `Bearer ${'t'.repeat(30_000)}` } });
      expect(answer.status).to.equal(431);
      expect(jsonError(answer)).to.deep.equal(headersTooLarge);
    });

    it('answers a 20 KB URL with the same 431', async () => {
      const answer = await rawRequest(port, { target: `/ok?q=${'u'.repeat(20_000)}` });
      expect(answer.status).to.equal(431);
      expect(jsonError(answer)).to.deep.equal(headersTooLarge);
    });

    it('answers a request that is not HTTP with 400 naming the parse error', async () => {
      const answer = await rawRequest(port, { raw: 'HELLO THERE\r\n\r\n' });
      expect(answer.status).to.equal(400);
      expect(jsonError(answer)).to.deep.equal({
        error: {
          code: 'FMCP_ERR_BAD_HTTP',
          message: 'The request is not valid HTTP/1.1 (HPE_INVALID_METHOD: Invalid method encountered): send a well-formed request (check the client or proxy that sent it)',
        },
      });
    });

    it('answers headers that stop coming with 408 naming both time limits', async () => {
      const answer = await rawRequest(port, { raw: 'GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n' });
      expect(answer.status).to.equal(408);
      expect(jsonError(answer)).to.deep.equal({
        error: {
          code: 'FMCP_ERR_REQUEST_TIMEOUT',
          message: 'The request did not arrive in time (its headers within 0.5 s, all of it within 2 s): send it again without pauses',
        },
      });
    });
  });

  describe('errors', () => {
    let port: number;
    beforeEach(async () => {
      kernel = kernelWith([
        routes((api) => {
          api.route({ method: 'GET', path: '/coded', handler: () => { throw errors.FMCP_ERR_BAD_REQUEST('the "x" parameter is missing: add ?x=1'); } });
          api.route({ method: 'GET', path: '/plain', handler: async () => { throw new Error('kaboom'); } });
          api.route({
            method: 'GET',
            path: '/half',
            handler: (ctx) => {
              ctx.res.writeHead(200, { 'content-type': 'text/plain' });
              ctx.res.write('partial');
              throw new Error('after headers');
            },
          });
        }),
      ]);
      await kernel.start();
      port = kernel.address().port;
    });

    it('turns a coded error into JSON with its status', async () => {
      const res = await request(port, { path: '/coded' });
      expect(res.status).to.equal(400);
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_BAD_REQUEST', message: 'the "x" parameter is missing: add ?x=1' } });
    });

    it('turns any other error into a 500 FMCP_ERR_INTERNAL', async () => {
      const res = await request(port, { path: '/plain' });
      expect(res.status).to.equal(500);
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_INTERNAL', message: 'Internal error: kaboom' } });
    });

    it('ends a response whose headers were already sent', async () => {
      const res = await request(port, { path: '/half' });
      expect(res.status).to.equal(200);
      expect(res.text).to.equal('partial');
    });
  });

  describe('request hooks', () => {
    it('run in order: onRequest, preHandler, handler, onResponse', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'recorder',
          register(api) {
            api.addHook('onRequest', (ctx) => void calls.push(`onRequest ${ctx.method} ${ctx.path}`));
            api.addHook('onRequest', () => void calls.push('onRequest 2'));
            api.addHook('preHandler', (ctx) => void calls.push(`preHandler body=${ctx.body?.toString()}`));
            api.addHook('onResponse', (ctx) => void calls.push(`onResponse ${ctx.res.statusCode}`));
            api.addHook('onError', () => void calls.push('onError'));
            api.route({ method: 'POST', path: '/:name/do', handler: (ctx) => { calls.push(`handler ${ctx.params.name}`); sendJson(ctx.res, 201, {}); } });
          },
        }),
      ]);
      await kernel.start();
      const res = await request(kernel.address().port, { method: 'POST', path: '/a/do', body: 'hi' });
      expect(res.status).to.equal(201);
      await waitFor(() => calls.length === 5, 2000, 'onResponse');
      expect(calls).to.deep.equal(['onRequest POST /a/do', 'onRequest 2', 'preHandler body=hi', 'handler a', 'onResponse 201']);
    });

    it('run onError with the coded error when the handler throws, then onResponse', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'recorder',
          register(api) {
            api.addHook('onRequest', () => void calls.push('onRequest'));
            api.addHook('preHandler', () => void calls.push('preHandler'));
            api.addHook('onError', (_ctx, err) => void calls.push(`onError ${(err as { code?: string }).code}`));
            api.addHook('onError', () => { calls.push('onError 2 throws'); throw new Error('ignored'); });
            api.addHook('onResponse', (ctx) => void calls.push(`onResponse ${ctx.res.statusCode}`));
            api.route({ method: 'GET', path: '/boom', handler: () => { calls.push('handler'); throw new Error('boom'); } });
          },
        }),
      ]);
      await kernel.start();
      const res = await request(kernel.address().port, { path: '/boom' });
      expect(res.status).to.equal(500);
      await waitFor(() => calls.includes('onResponse 500'), 2000, 'onResponse');
      expect(calls).to.deep.equal(['onRequest', 'preHandler', 'handler', 'onError FMCP_ERR_INTERNAL', 'onError 2 throws', 'onResponse 500']);
    });

    it('runs onError for a 404 too, without route hooks', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'recorder',
          register(api) {
            api.addHook('preHandler', () => void calls.push('preHandler'));
            api.addHook('onError', (_ctx, err) => void calls.push(`onError ${(err as { code?: string }).code}`));
          },
        }),
      ]);
      await kernel.start();
      expect((await request(kernel.address().port, { path: '/none' })).status).to.equal(404);
      expect(calls).to.deep.equal(['onError FMCP_ERR_NOT_FOUND']);
    });

    it('stop the chain when an onRequest hook answers', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'gate',
          register(api) {
            api.addHook('onRequest', (ctx) => { calls.push('onRequest 1'); if (ctx.path === '/blocked') sendJson(ctx.res, 429, { slow: 'down' }); });
            api.addHook('onRequest', () => void calls.push('onRequest 2'));
            api.addHook('preHandler', () => void calls.push('preHandler'));
            api.route({ method: 'GET', path: '/blocked', handler: () => void calls.push('handler') });
          },
        }),
      ]);
      await kernel.start();
      const res = await request(kernel.address().port, { path: '/blocked' });
      expect(res.status).to.equal(429);
      expect(res.json()).to.deep.equal({ slow: 'down' });
      expect(calls).to.deep.equal(['onRequest 1']);
    });

    it('stop the chain when a preHandler hook answers', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'gate',
          register(api) {
            api.addHook('preHandler', (ctx) => { calls.push('preHandler 1'); sendJson(ctx.res, 403, {}); });
            api.addHook('preHandler', () => void calls.push('preHandler 2'));
            api.route({ method: 'GET', path: '/x', handler: () => void calls.push('handler') });
          },
        }),
      ]);
      await kernel.start();
      expect((await request(kernel.address().port, { path: '/x' })).status).to.equal(403);
      expect(calls).to.deep.equal(['preHandler 1']);
    });
  });

  describe('lifecycle', () => {
    it('check() registers the plugins and claims and validates the servers, as start() does, and starts nothing', async () => {
      const calls: string[] = [];
      const validating: TransportFactory = { ...inertTransport, validate: (def) => void calls.push(`validate ${def.name}`) };
      const plugin = definePlugin({
        name: 'checked',
        register(api) {
          calls.push('register');
          api.transports.register('inert', validating);
          for (const hook of ['onStart', 'onReady'] as const) api.addHook(hook, () => void calls.push(hook));
        },
      });
      const checked = kernelWith([plugin], { servers: [server('a')] });
      await checked.check();
      expect(calls).to.deep.equal(['register', 'validate a']);
      expect(checked.state).to.equal('stopped');
      expect(() => checked.address()).to.throw();
      expect((await errorOf(checked.start())).message).to.equal('Cannot start: the kernel is stopped');
      // start()'s own error, for a server no strategy claims
      const unclaimed = kernelWith([plugin], { servers: [server('b', { type: 'magic' })] });
      expect((await errorOf(unclaimed.check())).message).to.equal(
        '/virtual/metadata.json: mcpServers.b.auth: no plugin handles auth "magic" (known: none). Load a plugin that does with --plugin <module> or a "plugins" list in the config',
      );
    });

    it('runs onStart, onReady in plugin order and preClose, onClose last-in first-out', async () => {
      const calls: string[] = [];
      const recorder = (name: string, dependencies?: string[]) =>
        definePlugin({
          name,
          dependencies,
          register(api) {
            calls.push(`register ${name}`);
            for (const hook of ['onStart', 'onReady', 'preClose', 'onClose'] as const) {
              api.addHook(hook, async () => {
                await new Promise((r) => setImmediate(r));
                calls.push(`${hook} ${name}`);
              });
            }
          },
        });
      kernel = kernelWith([recorder('b', ['a']), recorder('a')]);
      expect(kernel.state).to.equal('idle');
      await kernel.start();
      expect(kernel.state).to.equal('started');
      expect(calls).to.deep.equal(['register a', 'register b', 'onStart a', 'onStart b', 'onReady a', 'onReady b']);
      calls.length = 0;
      await kernel.stop();
      expect(kernel.state).to.equal('stopped');
      expect(calls).to.deep.equal(['preClose b', 'preClose a', 'onClose b', 'onClose a']);
    });

    it('is listening by onReady and not yet by onStart', async () => {
      const seen: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'probe',
          register(api) {
            api.addHook('onStart', () => void seen.push(`onStart ${api.kernel.state}`));
            api.addHook('onReady', () => void seen.push(`onReady ${api.kernel.state} port>0=${api.kernel.address().port > 0}`));
          },
        }),
      ]);
      await kernel.start();
      expect(seen).to.deep.equal(['onStart starting', 'onReady started port>0=true']);
    });

    it('closes the HTTP server on stop: the port refuses connections', async () => {
      kernel = kernelWith([]);
      await kernel.start();
      const { port } = kernel.address();
      expect((await request(port, { path: '/health' })).status).to.equal(200);
      await kernel.stop();
      const err = await errorOf(request(port, { path: '/health' }));
      expect((err as NodeJS.ErrnoException).code).to.equal('ECONNREFUSED');
    });

    it('stop() is idempotent and a stopped kernel cannot start again', async () => {
      kernel = kernelWith([]);
      await kernel.start();
      await Promise.all([kernel.stop(), kernel.stop()]);
      await kernel.stop();
      const err = await errorOf(kernel.start());
      expect(errors.FMCP_ERR_KERNEL_STATE.is(err)).to.equal(true);
    });

    it('stops what it started when start fails, running close hooks', async () => {
      const calls: string[] = [];
      kernel = kernelWith([
        definePlugin({
          name: 'half',
          register(api) {
            api.addHook('onStart', () => void calls.push('onStart'));
            api.addHook('onClose', () => void calls.push('onClose'));
            api.addHook('onReady', () => { throw new Error('not today'); });
          },
        }),
      ]);
      const err = await errorOf(kernel.start());
      expect(errors.FMCP_ERR_PLUGIN_FAILED.is(err)).to.equal(true);
      expect(err.message).to.equal('Plugin "half" failed in onReady: not today');
      expect(calls).to.deep.equal(['onStart', 'onClose']);
      expect(kernel.state).to.equal('stopped');
    });

    it('bounds a preClose hook that never finishes: warns naming it and goes on to onClose', async () => {
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const steps: string[] = [];
      kernel = kernelWith(
        [
          definePlugin({
            name: 'stuck',
            register: (api) => {
              api.addHook('preClose', () => new Promise(() => undefined));
              api.addHook('onClose', () => void steps.push('onClose ran'));
            },
          }),
        ],
        { closeTimeout: 200, logger },
      );
      await kernel.start();
      // 25 times the bound: a stop that waited for the hook, or for any bound of seconds, loses this race
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<string>((r) => (timer = setTimeout(() => r('still stopping after 5 s'), 5000)));
      const outcome = await Promise.race([kernel.stop().then(() => 'stopped'), late]);
      clearTimeout(timer);
      expect(outcome).to.equal('stopped');
      expect(kernel.state).to.equal('stopped');
      expect(steps).to.deep.equal(['onClose ran']);
      expect(lines.map((l) => [l.plugin, l.step, l.msg])).to.deep.equal([['stuck', 'preClose', 'stop step did not finish in time; going on']]);
    });

    it('rejects hooks added after start', async () => {
      let saved: PluginApi | undefined;
      kernel = kernelWith([definePlugin({ name: 'late', register: (api) => void (saved = api) })]);
      await kernel.start();
      const err = thrownBy(() => saved!.addHook('onRequest', () => undefined));
      expect(errors.FMCP_ERR_HOOK_AFTER_START.is(err)).to.equal(true);
      expect(err.message).to.contain('"onRequest"');
      expect(errors.FMCP_ERR_HOOK_AFTER_START.is(thrownBy(() => kernel!.addHook('onClose', () => undefined)))).to.equal(true);
    });

    it('rejects an unknown hook name, listing the known ones', () => {
      kernel = kernelWith([]);
      const err = thrownBy(() => kernel!.addHook('onFinish' as 'onClose', () => undefined));
      expect(errors.FMCP_ERR_HOOK_UNKNOWN.is(err)).to.equal(true);
      expect(err.message).to.contain('onFinish').and.contain('preHandler');
    });

    it('rejects use() once started', async () => {
      kernel = kernelWith([]);
      await kernel.start();
      const err = thrownBy(() => kernel!.use(definePlugin({ name: 'late', register() {} })));
      expect(errors.FMCP_ERR_KERNEL_STATE.is(err)).to.equal(true);
    });
  });

  describe('containers', () => {
    it('gives two kernels in one process separate registrations', async () => {
      const WIDGET = defineToken<{ owner: string }>('test-widget');
      const provider = (owner: string) => definePlugin({ name: 'widget', register: (api) => api.provide(WIDGET, { owner }) });
      const one = kernelWith([provider('one')]);
      const two = kernelWith([]);
      try {
        await one.start();
        await two.start();
        expect(one.resolve(WIDGET)).to.deep.equal({ owner: 'one' });
        expect(two.tryResolve(WIDGET)).to.equal(undefined);
        expect(rootContainer.isRegistered(WIDGET.symbol, true)).to.equal(false);
        expect(errors.FMCP_ERR_TOKEN_MISSING.is(thrownBy(() => two.resolve(WIDGET)))).to.equal(true);
        expect(one.container).to.not.equal(two.container);
        expect(one.address().port).to.not.equal(two.address().port);
      } finally {
        await one.stop();
        await two.stop();
      }
    });

    it('lets a plugin resolve what another provided, through the container', async () => {
      const CLOCK = defineToken<() => number>('test-clock');
      let seen: number | undefined;
      kernel = kernelWith([
        definePlugin({ name: 'consumer', dependencies: ['provider'], register: (api) => { seen = api.resolve(CLOCK)(); } }),
        definePlugin({ name: 'provider', register: (api) => api.provide(CLOCK, () => 42) }),
      ]);
      await kernel.start();
      expect(seen).to.equal(42);
    });
  });

  describe('Host and Origin checks', () => {
    let port: number;
    const okRoute = routes((api) => api.route({ method: 'GET', path: '/ok', handler: (ctx) => sendJson(ctx.res, 200, { ok: true }) }));

    describe('on loopback', () => {
      beforeEach(async () => {
        kernel = kernelWith([okRoute], { host: '127.0.0.1', allowedHosts: ['gw.example.com'], allowedOrigins: ['https://app.example.com'] });
        await kernel.start();
        port = kernel.address().port;
      });

      for (const host of ['localhost', 'localhost:8099', '127.0.0.1:1', '[::1]:8099', 'gw.example.com', 'GW.example.com:443']) {
        it(`accepts Host ${host}`, async () => {
          expect((await request(port, { path: '/ok', headers: { host } })).status).to.equal(200);
        });
      }

      it('refuses a foreign Host with 403 JSON saying how to allow it', async () => {
        const res = await request(port, { path: '/ok', headers: { host: 'evil.example:8099' } });
        expect(res.status).to.equal(403);
        const { error } = res.json<{ error: { code: string; message: string } }>();
        expect(error.code).to.equal('FMCP_ERR_FORBIDDEN');
        expect(error.message).to.contain('evil.example').and.contain('--allowed-host evil.example');
      });

      for (const origin of ['http://localhost:3000', 'http://127.0.0.1:5173', 'https://app.example.com', 'https://gw.example.com']) {
        it(`accepts Origin ${origin}`, async () => {
          expect((await request(port, { path: '/ok', headers: { origin } })).status).to.equal(200);
        });
      }

      it('refuses a foreign Origin with 403 before routing (not 404)', async () => {
        const res = await request(port, { path: '/nothing-here', headers: { origin: 'https://evil.example' } });
        expect(res.status).to.equal(403);
        expect(res.json<{ error: { message: string } }>().error.message).to.contain('--allowed-origin https://evil.example');
      });

      it('refuses an Origin that is not a URL', async () => {
        expect((await request(port, { path: '/ok', headers: { origin: 'not a url' } })).status).to.equal(403);
      });

      it('refuses the opaque Origin "null" (sandboxed frames of any site send it) unless allowed', async () => {
        const res = await request(port, { path: '/ok', headers: { origin: 'null' } });
        expect(res.status).to.equal(403);
        expect(res.json<{ error: { message: string } }>().error.message).to.contain('--allowed-origin null');
        await kernel!.stop();
        kernel = kernelWith([okRoute], { allowedOrigins: ['null'] });
        await kernel.start();
        expect((await request(kernel.address().port, { path: '/ok', headers: { origin: 'null' } })).status).to.equal(200);
      });
    });

    describe('on a public address', () => {
      beforeEach(async () => {
        kernel = kernelWith([okRoute], { host: '0.0.0.0' });
        await kernel.start();
        port = kernel.address().port;
      });

      it('accepts any Host but still checks Origin', async () => {
        expect((await request(port, { path: '/ok', headers: { host: 'gateway.example.com' } })).status).to.equal(200);
        expect((await request(port, { path: '/ok', headers: { origin: 'https://evil.example' } })).status).to.equal(403);
      });
    });
  });

  describe('auth guard', () => {
    const seen: string[] = [];
    const testStrategy: AuthStrategy = {
      key: 'test/header',
      setup: (server) => void seen.push(`setup ${server.name}`),
      authenticate(ctx, server) {
        seen.push(`authenticate ${server.name}`);
        const token = ctx.req.headers['x-test-token'];
        if (token !== 'letmein') {
          ctx.res.setHeader('www-authenticate', 'Test realm="gateway"');
          throw errors.FMCP_ERR_UNAUTHORIZED(`${server.name} needs an X-Test-Token header`);
        }
        return { key: 'alice-key', env: { TEST_TOKEN: token }, subject: 'alice' };
      },
    };
    let port: number;

    beforeEach(async () => {
      seen.length = 0;
      kernel = kernelWith(
        [
          definePlugin({
            name: 'test-auth',
            register(api) {
              api.transports.register('inert', inertTransport);
              api.authStrategies.register('test/header', testStrategy);
              api.route({
                method: 'GET',
                path: '/:name/whoami',
                guard: 'name',
                handler: (ctx) => sendJson(ctx.res, 200, { key: ctx.identity.key, subject: ctx.identity.subject ?? null }),
              });
              api.route({ method: 'GET', path: '/:name/open', handler: (ctx) => sendJson(ctx.res, 200, { key: ctx.identity.key }) });
            },
          }),
        ],
        { servers: [server('locked', { type: 'test', flow: 'header' }), server('public')] },
      );
      await kernel.start();
      port = kernel.address().port;
    });

    it('sets up the strategy for each server it guards', () => {
      expect(seen).to.deep.equal(['setup locked']);
    });

    it('runs the named server\'s strategy: 401 with its headers without credentials', async () => {
      const res = await request(port, { path: '/locked/whoami' });
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal('Test realm="gateway"');
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_UNAUTHORIZED', message: 'locked needs an X-Test-Token header' } });
      expect(seen).to.deep.equal(['setup locked', 'authenticate locked']);
    });

    it('hands the identity to the handler with credentials', async () => {
      const res = await request(port, { path: '/locked/whoami', headers: { 'x-test-token': 'letmein' } });
      expect(res.json()).to.deep.equal({ key: 'alice-key', subject: 'alice' });
    });

    it('lets a server without auth through as the anonymous identity', async () => {
      expect((await request(port, { path: '/public/whoami' })).json()).to.deep.equal({ key: 'shared', subject: null });
      expect(seen).to.deep.equal(['setup locked']);
    });

    it('does not run the strategy on routes without a guard', async () => {
      expect((await request(port, { path: '/locked/open' })).json()).to.deep.equal({ key: 'shared' });
      expect(seen).to.deep.equal(['setup locked']);
    });

    it('records the transport and auth that claimed each server', () => {
      expect(kernel!.servers.get('locked')).to.include({ transport: 'inert', auth: 'test/header' });
      expect(kernel!.servers.get('public')).to.include({ transport: 'inert' });
      expect(kernel!.servers.get('public')!.auth).to.equal(undefined);
    });
  });

  describe('/health', () => {
    it('reports the state and each server with fields plugins add', async () => {
      kernel = kernelWith(
        [
          definePlugin({
            name: 'health-test',
            register(api) {
              api.transports.register('inert', inertTransport);
              api.addHealth((s) => ({ upstream: s.name === 'one' ? 'up' : 'starting' }));
            },
          }),
        ],
        { servers: [server('one'), server('two')] },
      );
      await kernel.start();
      const res = await request(kernel.address().port, { path: '/health' });
      expect(res.status).to.equal(200);
      expect(res.json()).to.deep.equal({
        status: 'ok',
        servers: { one: { transport: 'inert', upstream: 'up' }, two: { transport: 'inert', upstream: 'starting' } },
      });
    });
  });

  describe('publicUrl', () => {
    it('is http://localhost:<port> on loopback, and the configured URL without a trailing slash otherwise', async () => {
      kernel = kernelWith([]);
      await kernel.start();
      expect(kernel.publicUrl()).to.equal(`http://localhost:${kernel.address().port}`);
      await kernel.stop();
      kernel = kernelWith([], { publicUrl: 'https://gw.example.com/' });
      await kernel.start();
      expect(kernel.publicUrl()).to.equal('https://gw.example.com');
    });
  });

  describe('listening', () => {
    it('fails with FMCP_ERR_LISTEN when the port is taken, and releases everything', async () => {
      const first = kernelWith([]);
      await first.start();
      try {
        const calls: string[] = [];
        kernel = kernelWith([definePlugin({ name: 'closer', register: (api) => api.addHook('onClose', () => void calls.push('onClose')) })], { port: first.address().port });
        const err = await errorOf(kernel.start());
        expect(errors.FMCP_ERR_LISTEN.is(err)).to.equal(true);
        expect(err.message).to.equal(`Cannot listen on 127.0.0.1:${first.address().port}: the port is already in use (choose another with --port)`);
        expect(calls).to.deep.equal(['onClose']);
        expect(kernel.state).to.equal('stopped');
      } finally {
        await first.stop();
      }
    });
  });
});
