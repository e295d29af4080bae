import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, definePlugin, KernelEvents, sendJson, type GatewayEvents } from '../../core/index.js';
import { request, waitFor } from '../helpers/request.js';

describe('core: events', () => {
  it('delivers an event to its listeners in the order they were added, and only to those of its name', () => {
    const failures: string[] = [];
    const bus = new KernelEvents((name, owner) => failures.push(`${name} ${owner}`));
    const seen: string[] = [];
    bus.on('call.completed', (d) => seen.push(`a ${d.server} ${d.ms} ${d.ok}`));
    bus.on('call.completed', (d) => seen.push(`b ${d.server}`));
    bus.on('stream.opened', () => seen.push('stream'));
    bus.emit('call.completed', { server: 'calc', ms: 3, ok: true });
    expect(seen).to.deep.equal(['a calc 3 true', 'b calc']);
    expect(failures).to.deep.equal([]);
  });

  it('says whether anyone listens, and a removed listener hears nothing more', () => {
    const bus = new KernelEvents(() => undefined);
    expect(bus.listening('login.outcome')).to.equal(false);
    const seen: GatewayEvents['login.outcome'][] = [];
    const off = bus.on('login.outcome', (d) => seen.push(d));
    expect(bus.listening('login.outcome')).to.equal(true);
    bus.emit('login.outcome', { server: 'mail', outcome: 'success' });
    off();
    off();
    expect(bus.listening('login.outcome')).to.equal(false);
    bus.emit('login.outcome', { server: 'mail', outcome: 'bad_state' });
    expect(seen).to.deep.equal([{ server: 'mail', outcome: 'success' }]);
  });

  it('keeps a throwing listener from reaching the emitter or the listeners after it, and reports it with its owner', () => {
    const failures: string[] = [];
    const bus = new KernelEvents((name, owner, err) => failures.push(`${name} ${owner} ${(err as Error).message}`));
    const seen: string[] = [];
    bus.on('x.custom', () => {
      throw new Error('boom');
    }, 'plugin-a');
    bus.on('x.custom', (d) => seen.push(String(d)));
    expect(() => bus.emit('x.custom', 'payload')).not.to.throw();
    expect(seen).to.deep.equal(['payload']);
    expect(failures).to.deep.equal(['x.custom plugin-a boom']);
  });

  it('lets a listener remove itself while the event is delivered without skipping the others', () => {
    const bus = new KernelEvents(() => undefined);
    const seen: string[] = [];
    const off = bus.on('stream.closed', () => {
      seen.push('once');
      off();
    });
    bus.on('stream.closed', () => seen.push('always'));
    bus.emit('stream.closed', {});
    bus.emit('stream.closed', {});
    expect(seen).to.deep.equal(['once', 'always', 'always']);
  });

  it('is one bus per kernel, reached by plugins through api.events, and names the plugin of a failing listener', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'error' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const heard: string[] = [];
    const a = createKernel({ port: 0, logger });
    const b = createKernel({ port: 0, logger });
    a.use(definePlugin({
      name: 'listener',
      register(api) {
        api.events.on('upstream.started', (d) => heard.push(d.server));
        api.events.on('upstream.stopped', () => {
          throw new Error('listener bug');
        });
      },
    }));
    a.use(definePlugin({
      name: 'emitter',
      register(api) {
        api.addHook('onStart', () => {
          api.events.emit('upstream.started', { server: 'from-a' });
          api.events.emit('upstream.stopped', { server: 'from-a', wasUp: true });
        });
      },
    }));
    b.use(definePlugin({ name: 'emitter', register: (api) => api.addHook('onStart', () => api.events.emit('upstream.started', { server: 'from-b' })) }));
    try {
      await a.start();
      await b.start();
      expect(heard).to.deep.equal(['from-a']);
      expect(lines.some((l) => l.plugin === 'listener' && l.event === 'upstream.stopped' && l.error === 'listener bug')).to.equal(true);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('gives onResponse hooks the matched route pattern, and none when nothing matched', async () => {
    const routes: string[] = [];
    const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) });
    kernel.use(definePlugin({
      name: 'routes',
      register(api) {
        api.route({ method: 'GET', path: '/:name/thing', handler: (ctx) => sendJson(ctx.res, 200, {}) });
        api.addHook('onResponse', (ctx) => void routes.push(`${ctx.path} ${ctx.route ?? '(none)'} ${ctx.res.statusCode}`));
      },
    }));
    await kernel.start();
    try {
      const { port } = kernel.address();
      await request(port, { path: '/calc/thing' });
      await request(port, { path: '/nowhere' });
      await request(port, { path: '/health' });
      await waitFor(() => routes.length === 3, 2000, 'three onResponse calls');
      expect(routes.sort()).to.deep.equal(['/calc/thing /:name/thing 200', '/health /health 200', '/nowhere (none) 404']);
    } finally {
      await kernel.stop();
    }
  });
});
