import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, definePlugin, FluidError, parseConfig, type Kernel } from '../../core/index.js';

const servers = () =>
  parseConfig({ mcpServers: { s: { command: 'x', auth: { type: 'custom' } } } }, '/tmp/errors-config.json', '/tmp').servers;

const transport = definePlugin({
  name: 'test-transport',
  register(api) {
    api.transports.register('test', { kind: 'test', claims: () => true, create: () => { throw new Error('unused'); } });
  },
});

function authPlugin(validate: () => void, authenticate: () => never): ReturnType<typeof definePlugin> {
  return definePlugin({
    name: 'test-auth',
    register(api) {
      api.route({ method: 'GET', path: '/:name/thing', guard: 'name', handler: (ctx) => void ctx.res.end('ok') });
      api.authStrategies.register('custom', { key: 'custom', validate, authenticate });
    },
  });
}

describe('core/kernel: errors thrown by a plugin\'s strategy name the plugin', () => {
  let kernel: Kernel | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it('wraps a plain error from validate() at start', async () => {
    kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }), servers: servers() });
    kernel.use(transport).use(authPlugin(() => { throw new TypeError('boom in validate'); }, () => { throw new Error('x'); }));
    let error: unknown;
    await kernel.start().catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(FluidError);
    expect((error as FluidError).code).to.equal('FMCP_ERR_PLUGIN_FAILED');
    expect((error as Error).message).to.include('test-auth').and.to.include('validate').and.to.include('boom in validate');
  });

  it('wraps a plain error from authenticate() in a 500 that names the plugin and the server', async () => {
    kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }), servers: servers() });
    kernel.use(transport).use(authPlugin(() => undefined, () => { throw new Error('boom in authenticate'); }));
    await kernel.start();
    const res = await fetch(`http://127.0.0.1:${kernel.address().port}/s/thing`);
    expect(res.status).to.equal(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).to.equal('FMCP_ERR_PLUGIN_FAILED');
    expect(body.error.message).to.include('test-auth').and.to.include('"s"').and.to.include('boom in authenticate');
  });
});
