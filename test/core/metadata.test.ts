import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { authKey, createKernel, definePlugin, errors, loadConfigFile, parseConfig, type FluidError, type ServerDefinition } from '../../core/index.js';

const silent = pino({ level: 'silent' });

function thrownBy(fn: () => unknown): FluidError {
  try {
    fn();
  } catch (err) {
    return err as FluidError;
  }
  throw new Error('expected a throw');
}

describe('core/metadata', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fmcp-metadata-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, content: unknown): string => {
    const file = join(dir, name);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };

  describe('loading', () => {
    it('reads servers with their source file and folder', () => {
      const file = write('metadata.json', {
        mcpServers: {
          everything: { command: 'npx', args: ['-y', 'server-everything'], env: { A: '1' } },
          remote: { url: 'https://mcp.example.com/mcp', headers: { 'x-key': 'k' } },
          sub: { command: 'node', cwd: 'sub' },
        },
      });
      const config = loadConfigFile(file);
      expect(config.file).to.equal(file);
      expect(config.plugins).to.deep.equal([]);
      expect(config.servers.map((s) => [s.name, s.source, s.dir])).to.deep.equal([
        ['everything', file, dir],
        ['remote', file, dir],
        ['sub', file, join(dir, 'sub')],
      ]);
      expect(config.servers[0]!.entry).to.deep.equal({ command: 'npx', args: ['-y', 'server-everything'], env: { A: '1' } });
    });

    it('resolves a "plugins" list relative to the file, leaving module names alone', () => {
      mkdirSync(join(dir, 'nested'), { recursive: true });
      const file = write('nested/config.json', { mcpServers: {}, plugins: ['./auth-api-key.mjs', '../shared/p.js', '/abs/plugin.js', '@acme/fluidmcp-auth', 'plain-name'] });
      expect(loadConfigFile(file).plugins).to.deep.equal([
        join(dir, 'nested', 'auth-api-key.mjs'),
        join(dir, 'shared', 'p.js'),
        '/abs/plugin.js',
        '@acme/fluidmcp-auth',
        'plain-name',
      ]);
    });

    it('reads a top-level "stateStore" URL, and none when the file has none', () => {
      expect(loadConfigFile(write('store.json', { mcpServers: {}, stateStore: 'redis://10.0.0.5:6379/2' })).stateStore).to.equal('redis://10.0.0.5:6379/2');
      expect(loadConfigFile(write('nostore.json', { mcpServers: {} })).stateStore).to.equal(undefined);
    });

    it('names the file when it cannot be read', () => {
      const missing = join(dir, 'missing.json');
      const err = thrownBy(() => loadConfigFile(missing));
      expect(errors.FMCP_ERR_CONFIG_READ.is(err)).to.equal(true);
      expect(err.message).to.equal(`Cannot read ${missing}: no such file`);
    });

    it('names the file and the parse problem for invalid JSON', () => {
      const file = write('broken.json', '{"mcpServers": {,}}');
      const err = thrownBy(() => loadConfigFile(file));
      expect(errors.FMCP_ERR_CONFIG_JSON.is(err)).to.equal(true);
      expect(err.message).to.match(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not valid JSON: .+`));
    });
  });

  describe('validation names the file, the server and the field', () => {
    const file = '/pkgs/acme/gmail/1.0.0/metadata.json';
    const cases: [string, unknown, string][] = [
      ['a top level that is not an object', [], '(top level): expected an object with "mcpServers"'],
      ['missing mcpServers', { servers: {} }, 'mcpServers: expected an object mapping server names'],
      ['mcpServers as a list', { mcpServers: [] }, 'mcpServers: expected an object'],
      ['a name that cannot be part of a URL', { mcpServers: { 'my server': { command: 'x' } } }, 'mcpServers.my server: the name must be 1-64 letters'],
      ['an entry that is not an object', { mcpServers: { gmail: 'npx gmail' } }, 'mcpServers.gmail: expected an object'],
      ['an empty command', { mcpServers: { gmail: { command: ' ' } } }, 'mcpServers.gmail.command: expected a non-empty string'],
      ['a command that is not a string', { mcpServers: { gmail: { command: ['npx'] } } }, 'mcpServers.gmail.command: expected a non-empty string'],
      ['neither command nor url', { mcpServers: { gmail: { args: [] } } }, 'mcpServers.gmail: expected "command" (a local server) or "url" (a remote server)'],
      ['both command and url', { mcpServers: { gmail: { command: 'x', url: 'http://h/mcp' } } }, 'mcpServers.gmail: has both "command" and "url": keep one'],
      ['a url that is not http(s)', { mcpServers: { gmail: { url: 'ftp://h/mcp' } } }, 'mcpServers.gmail.url: expected an http(s) URL'],
      ['args that are not strings', { mcpServers: { gmail: { command: 'x', args: ['a', 2] } } }, 'mcpServers.gmail.args: expected a list of strings'],
      ['env with a number', { mcpServers: { gmail: { command: 'x', env: { PORT: 1 } } } }, 'mcpServers.gmail.env: expected an object of string values'],
      ['headers as a list', { mcpServers: { gmail: { url: 'http://h/mcp', headers: ['a'] } } }, 'mcpServers.gmail.headers: expected an object of string values'],
      ['a cwd that is not a string', { mcpServers: { gmail: { command: 'x', cwd: 1 } } }, 'mcpServers.gmail.cwd: expected a string'],
      ['an unknown isolation', { mcpServers: { gmail: { command: 'x', isolation: 'process' } } }, 'mcpServers.gmail.isolation: expected "shared" or "session"'],
      ['auth that is not an object', { mcpServers: { gmail: { command: 'x', auth: 'oauth2' } } }, 'mcpServers.gmail.auth: expected an object with "type"'],
      ['auth without type', { mcpServers: { gmail: { command: 'x', auth: { flow: 'pkce' } } } }, 'mcpServers.gmail.auth.type: expected a non-empty string: the auth type, which a plugin handles'],
      ['auth with a numeric flow', { mcpServers: { gmail: { command: 'x', auth: { type: 'oauth2', flow: 2 } } } }, 'mcpServers.gmail.auth.flow: expected a string: the flow of that auth type'],
      ['plugins that are not a list of strings', { mcpServers: {}, plugins: 'x' }, 'plugins: expected a list of module names or paths'],
      ['a stateStore that is not a URL', { mcpServers: {}, stateStore: 'localhost:6379' }, 'stateStore: expected the URL of a pending-state store shared by replicas'],
      ['a stateStore that is not a string', { mcpServers: {}, stateStore: true }, 'stateStore: expected the URL of a pending-state store shared by replicas'],
    ];
    for (const [what, json, message] of cases) {
      it(`refuses ${what}`, () => {
        const err = thrownBy(() => parseConfig(json, file, '/pkgs/acme/gmail/1.0.0'));
        expect(errors.FMCP_ERR_CONFIG_INVALID.is(err)).to.equal(true);
        expect(err.message.startsWith(`${file}: ${message}`), err.message).to.equal(true);
      });
    }

    it('goes on to the next entry only when the first is valid: the error names the bad one', () => {
      const err = thrownBy(() => parseConfig({ mcpServers: { ok: { command: 'x' }, bad: { command: 'x', args: 'a b' } } }, file, '/'));
      expect(err.message).to.equal(`${file}: mcpServers.bad.args: expected a list of strings`);
    });
  });

  describe('auth keys', () => {
    it('is type/flow, or the type alone', () => {
      expect(authKey({ command: 'x', auth: { type: 'oauth2', flow: 'pkce' } })).to.equal('oauth2/pkce');
      expect(authKey({ command: 'x', auth: { type: 'api_key' } })).to.equal('api_key');
      expect(authKey({ command: 'x' })).to.equal(undefined);
    });
  });

  describe('claims at start', () => {
    const def = (name: string, entry: ServerDefinition['entry'], source = '/p/metadata.json'): ServerDefinition => ({ name, entry, source, dir: '/p', transport: '' });

    async function startError(servers: ServerDefinition[], withTransport: boolean): Promise<FluidError> {
      const kernel = createKernel({ port: 0, logger: silent, servers });
      if (withTransport) {
        kernel.use(definePlugin({
          name: 'fake-transport',
          register: (api) => api.transports.register('fake', { kind: 'fake', claims: (e) => e.command !== undefined, create: () => { throw new Error('unused'); } }),
        }));
        kernel.use(definePlugin({ name: 'fake-auth', register: (api) => api.authStrategies.register('oauth2/pkce', { key: 'oauth2/pkce', authenticate: () => ({ key: 'k', env: {} }) }) }));
      }
      try {
        await kernel.start();
      } catch (err) {
        return err as FluidError;
      } finally {
        await kernel.stop();
      }
      throw new Error('expected start() to fail');
    }

    it('refuses a server no transport claims, naming file, server and what is missing', async () => {
      const err = await startError([def('everything', { command: 'node' })], false);
      expect(errors.FMCP_ERR_STRATEGY_MISSING.is(err)).to.equal(true);
      expect(err.message).to.equal(
        '/p/metadata.json: mcpServers.everything: no plugin handles transport for "command node" (known: none). Load a plugin that does with --plugin <module> or a "plugins" list in the config',
      );
    });

    it('refuses a remote server when only command transports exist', async () => {
      const err = await startError([def('remote', { url: 'https://mcp.example.com/mcp' })], true);
      expect(errors.FMCP_ERR_STRATEGY_MISSING.is(err)).to.equal(true);
      expect(err.message).to.contain('mcpServers.remote: no plugin handles transport for "url https://mcp.example.com/mcp" (known: fake)');
    });

    it('refuses an unknown auth type, naming the field and the known ones', async () => {
      const err = await startError([def('gmail', { command: 'node', auth: { type: 'oauth2', flow: 'device_code' } })], true);
      expect(errors.FMCP_ERR_STRATEGY_MISSING.is(err)).to.equal(true);
      expect(err.message).to.equal(
        '/p/metadata.json: mcpServers.gmail.auth: no plugin handles auth "oauth2/device_code" (known: oauth2/pkce). Load a plugin that does with --plugin <module> or a "plugins" list in the config',
      );
    });

    it('refuses two servers with one name, naming both files', () => {
      const err = thrownBy(() => createKernel({ logger: silent, servers: [def('gmail', { command: 'a' }, '/a/metadata.json'), def('gmail', { command: 'b' }, '/b/metadata.json')] }));
      expect(errors.FMCP_ERR_CONFIG_INVALID.is(err)).to.equal(true);
      expect(err.message).to.equal('/b/metadata.json: mcpServers.gmail: the name is already used by /a/metadata.json: server names must be unique');
    });

    it('lets a transport refuse an entry with its own field error', async () => {
      const kernel = createKernel({ port: 0, logger: silent, servers: [def('picky', { command: 'node', args: [] })] });
      kernel.use(definePlugin({
        name: 'picky-transport',
        register: (api) => api.transports.register('picky', {
          kind: 'picky',
          claims: () => true,
          validate: (server) => { throw errors.FMCP_ERR_CONFIG_INVALID(server.source, `mcpServers.${server.name}.args`, 'expected at least one argument'); },
          create: () => { throw new Error('unused'); },
        }),
      }));
      const err = await kernel.start().then(() => undefined, (e: Error) => e);
      await kernel.stop();
      expect(err?.message).to.equal('/p/metadata.json: mcpServers.picky.args: expected at least one argument');
    });
  });
});
