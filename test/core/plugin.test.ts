import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, definePlugin, errors, type Plugin } from '../../core/index.js';

const silent = pino({ level: 'silent' });

function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

async function startError(plugins: Plugin[]): Promise<Error> {
  const kernel = createKernel({ port: 0, logger: silent });
  for (const p of plugins) kernel.use(p);
  try {
    await kernel.start();
  } catch (err) {
    return err as Error;
  } finally {
    await kernel.stop();
  }
  throw new Error('expected start() to fail');
}

describe('core/plugin', () => {
  describe('definePlugin', () => {
    it('returns a valid plugin as it is', () => {
      const plugin = { name: '@acme/auth-api-key', version: '1.0.0', dependencies: ['proxy-jsonrpc'], register() {} };
      expect(definePlugin(plugin)).to.equal(plugin);
    });

    const invalid: [string, unknown, RegExp][] = [
      ['not an object', 'auth', /Invalid plugin definePlugin\(\): expected an object with a name and a register\(\) function/],
      ['null', null, /expected an object/],
      ['no name', { register() {} }, /name must be a non-empty string/],
      ['an empty name', { name: '', register() {} }, /name must be a non-empty string/],
      ['a name with spaces', { name: 'my plugin', register() {} }, /name must be/],
      ['no register', { name: 'acme' }, /Invalid plugin "acme": register must be a function/],
      ['dependencies not a list', { name: 'acme', register() {}, dependencies: 'proxy' }, /"acme": dependencies must be a list of plugin names/],
      ['dependencies with a number', { name: 'acme', register() {}, dependencies: ['a', 1] }, /"acme": dependencies must be a list/],
      ['after not a list', { name: 'acme', register() {}, after: {} }, /"acme": after must be a list/],
      ['a numeric version', { name: 'acme', register() {}, version: 1 }, /"acme": version must be a string/],
    ];
    for (const [what, candidate, message] of invalid) {
      it(`refuses ${what} with FMCP_ERR_PLUGIN_INVALID`, () => {
        const err = thrownBy(() => definePlugin(candidate as Plugin));
        expect(errors.FMCP_ERR_PLUGIN_INVALID.is(err)).to.equal(true);
        expect(err.message).to.match(message);
      });
    }

    it('validates in kernel.use() too', () => {
      const err = thrownBy(() => createKernel({ logger: silent }).use({ name: 'x' } as Plugin));
      expect(errors.FMCP_ERR_PLUGIN_INVALID.is(err)).to.equal(true);
    });
  });

  describe('dependencies', () => {
    it('registers dependencies first, whatever the use() order', async () => {
      const order: string[] = [];
      const p = (name: string, dependencies?: string[], after?: string[]) => definePlugin({ name, dependencies, after, register: () => void order.push(name) });
      const kernel = createKernel({ port: 0, logger: silent });
      kernel.use(p('proxy', ['transport', 'streams'])).use(p('auth', ['proxy'])).use(p('streams')).use(p('transport', [], ['streams'])).use(p('extra', [], ['missing-is-fine']));
      await kernel.start();
      await kernel.stop();
      expect(order).to.deep.equal(['streams', 'transport', 'proxy', 'auth', 'extra']);
    });

    it('keeps use() order between plugins that do not depend on each other', async () => {
      const order: string[] = [];
      const kernel = createKernel({ port: 0, logger: silent });
      for (const name of ['c', 'a', 'b']) kernel.use(definePlugin({ name, register: () => void order.push(name) }));
      await kernel.start();
      await kernel.stop();
      expect(order).to.deep.equal(['c', 'a', 'b']);
    });

    it('reports a missing dependency at start, naming both plugins', async () => {
      const err = await startError([definePlugin({ name: 'auth-api-key', dependencies: ['proxy-jsonrpc'], register() {} })]);
      expect(errors.FMCP_ERR_PLUGIN_DEPENDENCY.is(err)).to.equal(true);
      expect(err.message).to.equal('Plugin "auth-api-key" depends on "proxy-jsonrpc", which is not registered: add it with kernel.use() or --plugin');
    });

    it('reports a cycle as one error naming the plugins in it', async () => {
      const err = await startError([
        definePlugin({ name: 'a', dependencies: ['b'], register() {} }),
        definePlugin({ name: 'b', dependencies: ['c'], register() {} }),
        definePlugin({ name: 'c', dependencies: ['a'], register() {} }),
        definePlugin({ name: 'd', dependencies: ['a'], register() {} }),
      ]);
      expect(errors.FMCP_ERR_PLUGIN_CYCLE.is(err)).to.equal(true);
      expect(err.message).to.equal('Plugins depend on each other in a cycle: a -> b -> c -> a');
    });

    it('reports a plugin that depends on itself', async () => {
      const err = await startError([definePlugin({ name: 'selfish', dependencies: ['selfish'], register() {} })]);
      expect(err.message).to.equal('Plugins depend on each other in a cycle: selfish -> selfish');
    });

    it('refuses a duplicate name at use(), naming it', () => {
      const kernel = createKernel({ logger: silent });
      kernel.use(definePlugin({ name: 'transport-stdio', register() {} }));
      const err = thrownBy(() => kernel.use(definePlugin({ name: 'transport-stdio', register() {} })));
      expect(errors.FMCP_ERR_PLUGIN_DUPLICATE.is(err)).to.equal(true);
      expect(err.message).to.contain('"transport-stdio"');
    });
  });

  describe('failures inside plugins', () => {
    it('wraps an error thrown in register() with the plugin name and step', async () => {
      const err = await startError([definePlugin({ name: 'broken', register() { throw new TypeError('x is undefined'); } })]);
      expect(errors.FMCP_ERR_PLUGIN_FAILED.is(err)).to.equal(true);
      expect(err.message).to.equal('Plugin "broken" failed in register: x is undefined');
      expect((err as Error & { cause?: unknown }).cause).to.be.instanceOf(TypeError);
    });

    it('wraps an async register() rejection and an onStart failure the same way', async () => {
      const a = await startError([definePlugin({ name: 'slow-broken', register: async () => { throw new Error('no config'); } })]);
      expect(a.message).to.equal('Plugin "slow-broken" failed in register: no config');
      const b = await startError([definePlugin({ name: 'boot', register: (api) => api.addHook('onStart', () => { throw new Error('port 0 busy'); }) })]);
      expect(b.message).to.equal('Plugin "boot" failed in onStart: port 0 busy');
    });

    it('keeps a coded error from a plugin as it is', async () => {
      const err = await startError([definePlugin({ name: 'strict', register() { throw errors.FMCP_ERR_CONFIG_INVALID('/x/metadata.json', 'mcpServers.a.auth.token_url', 'expected a URL'); } })]);
      expect(errors.FMCP_ERR_CONFIG_INVALID.is(err)).to.equal(true);
      expect(err.message).to.equal('/x/metadata.json: mcpServers.a.auth.token_url: expected a URL');
    });

    it('refuses two strategies under one key, naming both plugins', async () => {
      const strategy = { key: 'api_key', authenticate: () => ({ key: 'k', env: {} }) };
      const err = await startError([
        definePlugin({ name: 'first-auth', register: (api) => api.authStrategies.register('api_key', strategy) }),
        definePlugin({ name: 'second-auth', register: (api) => api.authStrategies.register('api_key', strategy) }),
      ]);
      expect(errors.FMCP_ERR_STRATEGY_DUPLICATE.is(err)).to.equal(true);
      expect(err.message).to.equal('Auth strategy "api_key" is registered twice: by plugin "first-auth" and by plugin "second-auth"');
    });
  });
});
