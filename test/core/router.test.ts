import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, definePlugin, errors, Router, sendJson, type Kernel, type RouteOptions } from '../../core/index.js';
import { request } from '../helpers/request.js';

const silent = pino({ level: 'silent' });

async function startWith(routes: RouteOptions[]): Promise<{ kernel: Kernel; port: number }> {
  const kernel = createKernel({ port: 0, logger: silent });
  kernel.use(definePlugin({ name: 'routes', register: (api) => routes.forEach((r) => api.route(r)) }));
  await kernel.start();
  return { kernel, port: kernel.address().port };
}

const echo = (label: string): RouteOptions['handler'] => (ctx) => sendJson(ctx.res, 200, { route: label, params: ctx.params, query: Object.fromEntries(ctx.query) });

describe('core/router', () => {
  describe('over HTTP', () => {
    let kernel: Kernel;
    let port: number;

    before(async () => {
      ({ kernel, port } = await startWith([
        { method: ['GET', 'POST'], path: '/:name/mcp', handler: echo('mcp') },
        { method: 'GET', path: '/special/mcp', handler: echo('literal') },
        { method: 'GET', path: '/:name/:tool', handler: echo('two-params') },
        { method: 'GET', path: '/:name/auth/login', handler: echo('login') },
        { method: 'GET', path: '/:name/tools/:tool/info', handler: echo('info') },
      ]));
    });
    after(() => kernel.stop());

    it('matches path parameters and hands them to the handler with the query', async () => {
      const res = await request(port, { path: '/everything/mcp?x=1' });
      expect(res.status).to.equal(200);
      expect(res.json()).to.deep.equal({ route: 'mcp', params: { name: 'everything' }, query: { x: '1' } });
    });

    it('matches several parameters in one path', async () => {
      const res = await request(port, { path: '/gmail/tools/send/info' });
      expect(res.json()).to.deep.include({ route: 'info', params: { name: 'gmail', tool: 'send' } });
    });

    it('percent-decodes parameters', async () => {
      const res = await request(port, { path: '/my%20server/mcp' });
      expect(res.json<{ params: unknown }>().params).to.deep.equal({ name: 'my server' });
    });

    it('answers 400 JSON for a parameter that is not valid percent-encoding', async () => {
      const res = await request(port, { path: '/bad%E0%A4%A/mcp' });
      expect(res.status).to.equal(400);
      expect(res.json<{ error: { code: string } }>().error.code).to.equal('FMCP_ERR_BAD_REQUEST');
    });

    it('prefers a literal path over a parameter', async () => {
      expect((await request(port, { path: '/special/mcp' })).json()).to.have.property('route', 'literal');
      expect((await request(port, { path: '/other/mcp' })).json()).to.have.property('route', 'mcp');
    });

    it('prefers a literal segment over a parameter in the same position', async () => {
      expect((await request(port, { path: '/x/mcp' })).json()).to.have.property('route', 'mcp');
      expect((await request(port, { path: '/x/health' })).json()).to.deep.include({ route: 'two-params', params: { name: 'x', tool: 'health' } });
      expect((await request(port, { path: '/x/auth/login' })).json()).to.have.property('route', 'login');
    });

    it('answers 404 JSON naming the method and path for an unknown path', async () => {
      const res = await request(port, { path: '/nowhere/at/all/here/x' });
      expect(res.status).to.equal(404);
      expect(res.headers['content-type']).to.equal('application/json');
      expect(res.json()).to.deep.equal({ error: { code: 'FMCP_ERR_NOT_FOUND', message: 'No route for GET /nowhere/at/all/here/x' } });
    });

    it('does not match an empty parameter', async () => {
      const res = await request(port, { path: '//mcp' });
      expect(res.status).to.equal(404);
    });

    it('answers 405 JSON with an Allow header for a known path and another method', async () => {
      const res = await request(port, { method: 'DELETE', path: '/x/mcp' });
      expect(res.status).to.equal(405);
      expect(res.headers.allow?.split(', ')).to.have.members(['GET', 'POST', 'HEAD']);
      const body = res.json<{ error: { code: string; message: string } }>();
      expect(body.error.code).to.equal('FMCP_ERR_METHOD_NOT_ALLOWED');
      expect(body.error.message).to.contain('DELETE').and.contain('/x/mcp');
    });

    it('answers HEAD on a GET route with the headers and no body', async () => {
      const res = await request(port, { method: 'HEAD', path: '/x/auth/login' });
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.equal('application/json');
      expect(Number(res.headers['content-length'])).to.be.greaterThan(0);
      expect(res.text).to.equal('');
    });
  });

  describe('registration', () => {
    it('refuses a duplicate route, naming the method, path and plugin', () => {
      const router = new Router();
      router.add({ method: 'GET', path: '/:name/mcp', handler: () => undefined }, 'first');
      let caught: unknown;
      try {
        router.add({ method: ['POST', 'GET'], path: '/:name/mcp', handler: () => undefined }, 'second');
      } catch (err) {
        caught = err;
      }
      expect(errors.FMCP_ERR_ROUTE_DUPLICATE.is(caught)).to.equal(true);
      expect((caught as Error).message).to.equal('Route GET /:name/mcp is registered twice (second by second)');
      // nothing of the refused route was kept
      expect(router.find('POST', '/x/mcp')).to.deep.include({ kind: 'method', allowed: ['GET', 'HEAD'] });
    });

    it('refuses a duplicate route registered by two plugins at start', async () => {
      const kernel = createKernel({ port: 0, logger: silent });
      const plugin = (name: string) => definePlugin({ name, register: (api) => api.route({ method: 'GET', path: '/:name/x', handler: () => undefined }) });
      kernel.use(plugin('one')).use(plugin('two'));
      const err = await kernel.start().then(() => undefined, (e: unknown) => e);
      expect(errors.FMCP_ERR_ROUTE_DUPLICATE.is(err)).to.equal(true);
      expect((err as Error).message).to.contain('two');
      expect(kernel.state).to.equal('stopped');
    });

    it('refuses a path that does not start with "/"', () => {
      let caught: unknown;
      try {
        new Router().add({ method: 'GET', path: 'x/mcp', handler: () => undefined });
      } catch (err) {
        caught = err;
      }
      expect(errors.FMCP_ERR_ROUTE_INVALID.is(caught)).to.equal(true);
      expect((caught as Error).message).to.equal('Invalid route path "x/mcp": it must start with "/"');
    });

    it('adds HEAD to GET routes unless HEAD has its own route', () => {
      const router = new Router();
      router.add({ method: 'GET', path: '/a', handler: () => undefined });
      router.add({ method: 'HEAD', path: '/b', handler: () => undefined });
      router.add({ method: 'GET', path: '/b', handler: () => undefined });
      const a = router.find('HEAD', '/a');
      const b = router.find('HEAD', '/b');
      expect(a.kind === 'found' && a.route.methods).to.deep.equal(['GET']);
      expect(b.kind === 'found' && b.route.methods).to.deep.equal(['HEAD']);
    });
  });
});
