import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { errorLines, everythingMetadata, processesWith, RunningCli, runCli, suiteTempTree, type CliResult } from '../helpers/cli.js';
import { everythingServer } from '../helpers/paths.js';
import { request, waitFor } from '../helpers/request.js';

/** One clear line on stderr (besides JSON log lines), no stack trace; returns it. */
function oneErrorLine(result: CliResult): string {
  const lines = errorLines(result.stderr);
  expect(lines, `stderr: ${result.stderr}`).to.have.length(1);
  expect(lines[0]).to.match(/^fluidmcp: /);
  expect(result.stderr).to.not.match(/^\s+at /m);
  return lines[0]!;
}

/** A plugin that registers the auth strategy `test/banner`, written as a plain ES module. */
const bannerPlugin = `
export default function testBanner() {
  return {
    name: 'test-banner',
    register(api) {
      api.authStrategies.register('test/banner', {
        key: 'test/banner',
        banner: (server, publicUrl) => ({ suffix: ' with test auth', lines: ['Login: ' + publicUrl + '/' + server.name + '/auth/login'] }),
        authenticate(ctx) {
          if (ctx.req.headers.authorization !== 'Bearer good') throw Object.assign(new Error('no'), { statusCode: 401 });
          return { key: 'good', env: {} };
        },
      });
    },
  };
}
`;

describe('cli: fluidmcp run', function () {
  this.timeout(30_000);
  const tree = suiteTempTree();
  // tags every server process this file starts, to prove none outlives its gateway
  const marker = `fmcp-cli-test-${randomUUID()}`;
  const noServerLeft = () => waitFor(() => processesWith(marker).length === 0, 3000, 'the MCP server processes to end');
  let packages = '';
  const env: Record<string, string> = {};
  before(() => {
    packages = join(tree.root, 'packages');
    env.FMCP_PACKAGES_DIR = packages;
  });
  const running: RunningCli[] = [];
  const start = (args: string[], cwd = tree.root): RunningCli => {
    const cli = new RunningCli(['run', ...args], { cwd, env });
    running.push(cli);
    return cli;
  };

  before(() => {
    tree.write('packages/test/everything/1.0.0/metadata.json', everythingMetadata(['everything'], marker));
    for (const v of ['1.2.0', '1.9.0', '1.10.0']) tree.write(`packages/test/versions/${v}/metadata.json`, { mcpServers: { [`v${v.replace(/\./g, '-')}`]: { command: 'node' } } });
    tree.write('packages/other/tool/0.1.0/metadata.json', { mcpServers: { tool: { command: 'node' } } });
    tree.write('packages/other/tool/0.2.0-beta.1/metadata.json', { mcpServers: { tool: { command: 'node' } } });
    tree.write('configs/config.json', everythingMetadata(['alpha', 'beta'], marker));
    tree.write('configs/banner.json', {
      mcpServers: { guarded: { ...everythingMetadata(['x'], marker).mcpServers.x, auth: { type: 'test', flow: 'banner' } } },
      plugins: ['./banner-plugin.mjs'],
    });
    tree.write('configs/banner-plugin.mjs', bannerPlugin);
    tree.write('cwd-plugin.mjs', bannerPlugin);
    tree.write('bad/invalid.json', '{"mcpServers": {"a": {"command": "node",}}}');
    tree.write('bad/args.json', { mcpServers: { gmail: { command: 'node', args: 'not a list' } } });
    tree.write('bad/auth.json', { mcpServers: { gmail: { command: 'node', args: [everythingServer, 'stdio', marker], auth: { type: 'magic-link' } } } });
    tree.write('bad/no-export.mjs', 'export const something = 1;\n');
    tree.write('bad/throws.mjs', 'throw new Error("plugin exploded at import");\n');
    tree.write('bad/shape.mjs', 'export const plugin = { name: "shapeless" };\n');
    tree.write('bad/config-plugin.json', { mcpServers: { a: { command: 'node' } }, plugins: ['./missing-plugin.mjs'] });
    tree.write('bad/empty.json', { mcpServers: {} });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((cli) => cli.stop('SIGTERM')));
  });

  after(async () => {
    await noServerLeft();
  });

  describe('serving', () => {
    it('serves a package: prints the seed\'s lines, answers MCP calls, and stops on SIGTERM with exit 0', async () => {
      const cli = start(['test/everything@1.0.0', '--start-server', '--port', '0']);
      const url = await cli.ready();
      const port = Number(new URL(url).port);
      expect(cli.stdout.split('\n')).to.deep.equal([
        'Reading metadata.json...',
        'Added everything endpoints',
        `Starting FluidMCP server on port ${port}`,
        `FluidMCP gateway ready at http://localhost:${port}`,
        '',
      ]);
      const res = await request(port, {
        method: 'POST',
        path: '/everything/mcp',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello from the cli test' } } }),
      });
      expect(res.status).to.equal(200);
      expect(res.text).to.contain('hello from the cli test');
      const health = (await request(port, { path: '/health' })).json<{ status: string; servers: Record<string, { pid?: number }> }>();
      expect(health.status).to.equal('ok');
      const serverPid = health.servers.everything?.pid;
      expect(serverPid).to.be.a('number');

      const result = await cli.stop('SIGTERM');
      expect(result.code).to.equal(0);
      expect(errorLines(result.stderr)).to.deep.equal([]);
      expect(() => process.kill(serverPid!, 0), 'the MCP server process is gone').to.throw();
      await noServerLeft();
    });

    it('serves a config file with --file, and its plugins list (banner lines from the auth strategy)', async () => {
      const cli = start(['--file', 'configs/banner.json', '--start-server', '--port', '0']);
      const url = await cli.ready();
      const port = new URL(url).port;
      expect(cli.stdout.split('\n')).to.deep.equal([
        'Reading configs/banner.json...',
        'Added guarded endpoints with test auth',
        `  Login: http://localhost:${port}/guarded/auth/login`,
        `Starting FluidMCP server on port ${port}`,
        `FluidMCP gateway ready at http://localhost:${port}`,
        '',
      ]);
    });

    it('loads --plugin relative to the working folder and uses --public-url in the lines', async () => {
      tree.write('plain/config.json', { mcpServers: { guarded: { ...everythingMetadata(['x'], marker).mcpServers.x, auth: { type: 'test', flow: 'banner' } } } });
      const cli = start(['--file', 'plain/config.json', '--plugin', './cwd-plugin.mjs', '--start-server', '--port', '0', '--public-url', 'https://gw.example.com/']);
      await cli.ready();
      expect(cli.stdout).to.contain('Added guarded endpoints with test auth\n  Login: https://gw.example.com/guarded/auth/login\n');
      expect(cli.stdout).to.contain('FluidMCP gateway ready at https://gw.example.com\n');
    });

    it('serves several servers of one file, each under its own name, and stops on SIGINT', async () => {
      const cli = start([join('configs', 'config.json'), '--start-server', '--port', '0']);
      const port = Number(new URL(await cli.ready()).port);
      expect(cli.stdout).to.match(/^Reading configs\/config\.json\.\.\.\nAdded alpha endpoints\nAdded beta endpoints\nStarting FluidMCP server on port \d+\n/);
      const health = (await request(port, { path: '/health' })).json<{ servers: Record<string, unknown> }>();
      expect(Object.keys(health.servers)).to.deep.equal(['alpha', 'beta']);
      const result = await cli.stop('SIGINT');
      expect(result.code, 'SIGINT stops it like SIGTERM').to.equal(0);
      await noServerLeft();
    });

    it('says "Reading metadata.json..." for a path to a metadata.json', async () => {
      const result = await runCli(['run', join(packages, 'test', 'everything', '1.0.0', 'metadata.json')], { cwd: tree.root, env });
      expect(result.code).to.equal(0);
      expect(result.stdout.split('\n')[0]).to.equal('Reading metadata.json...');
    });

    it('warns in one line at start when bound to a non-loopback address: what anyone on the network reaches', async () => {
      tree.write('network/config.json', {
        mcpServers: { open: everythingMetadata(['x'], marker).mcpServers.x, guarded: { ...everythingMetadata(['x'], marker).mcpServers.x, auth: { type: 'test', flow: 'banner' } } },
        plugins: ['./banner-plugin.mjs'],
      });
      tree.write('network/banner-plugin.mjs', bannerPlugin);
      const cli = start(['--file', 'network/config.json', '--start-server', '--port', '0', '--host', '0.0.0.0', '--metrics']);
      await cli.ready();
      const lines = cli.stdout.split('\n');
      const warning = 'Warning: listening on 0.0.0.0, reachable from the network: servers without auth (open), /health (process ids, stderr lines) and /metrics answer anyone who reaches it; bind to 127.0.0.1 (behind a proxy) unless that is meant';
      expect(lines.filter((l) => l.startsWith('Warning:'))).to.deep.equal([warning]);
      expect(lines[lines.indexOf(warning) + 1]).to.match(/^Starting FluidMCP server on port \d+$/);
      // on loopback (the default, and 127.0.0.1 named) no warning: the exact banners of the tests above
      const local = start(['--file', 'network/config.json', '--start-server', '--port', '0', '--host', '127.0.0.1']);
      await local.ready();
      expect(local.stdout).to.not.contain('Warning:');
    });

    it('passes --allowed-host to the Host check', async () => {
      const cli = start(['test/everything', '--start-server', '--port', '0', '--allowed-host', 'gw.internal', '--allowed-host', 'other.internal']);
      const port = Number(new URL(await cli.ready()).port);
      expect((await request(port, { path: '/health', headers: { host: 'gw.internal:8099' } })).status).to.equal(200);
      expect((await request(port, { path: '/health', headers: { host: 'other.internal' } })).status).to.equal(200);
      expect((await request(port, { path: '/health', headers: { host: 'evil.example' } })).status).to.equal(403);
      expect((await request(port, { path: '/health', headers: { origin: 'https://app.example' } })).status).to.equal(403);
    });

    it('a second signal exits at once while the first is still stopping', async () => {
      tree.write('stuck/stuck-plugin.mjs', `export const plugin = { name: 'stuck', register(api) { api.addHook('preClose', () => new Promise(() => {})); } };\n`);
      tree.write('stuck/config.json', { ...everythingMetadata(['everything'], marker), plugins: ['./stuck-plugin.mjs'] });
      const cli = start(['--file', 'stuck/config.json', '--start-server', '--port', '0']);
      await cli.ready();
      cli.signal('SIGTERM');
      await cli.waitFor('stderr', /"msg":"stopping"/);
      const result = await cli.stop('SIGINT', 3000);
      expect(result.code).to.equal(1);
      expect(oneErrorLine(result)).to.equal('fluidmcp: SIGINT received again: exiting without waiting');
      await noServerLeft();
    });
  });

  describe('package versions', () => {
    it('picks the highest version by semver (1.10.0 over 1.9.0) when none is given', async () => {
      const result = await runCli(['run', 'test/versions'], { cwd: tree.root, env });
      expect(result.code).to.equal(0);
      expect(result.stdout).to.contain('Would add v1-10-0 endpoints');
      expect(result.stdout).to.not.contain('Would add v1-9-0');
      // several versions installed: the dry run says which one it picked, in one line
      expect(result.stdout.split('\n').slice(0, 2)).to.deep.equal(['Reading metadata.json...', 'Using test/versions@1.10.0 (installed: 1.2.0, 1.9.0, 1.10.0)']);
      const asked = await runCli(['run', 'test/versions@~1.9'], { cwd: tree.root, env });
      expect(asked.stdout.split('\n')[1]).to.equal('Using test/versions@1.9.0 (installed: 1.2.0, 1.9.0, 1.10.0)');
    });

    it('runs the version asked for, or the highest matching a range', async () => {
      expect((await runCli(['run', 'test/versions@1.9.0'], { cwd: tree.root, env })).stdout).to.contain('Would add v1-9-0 endpoints');
      expect((await runCli(['run', 'test/versions@~1.9'], { cwd: tree.root, env })).stdout).to.contain('Would add v1-9-0 endpoints');
      expect((await runCli(['run', 'test/versions@<1.9.0'], { cwd: tree.root, env })).stdout).to.contain('Would add v1-2-0 endpoints');
    });

    it('serves the highest version of every package with "all"', async () => {
      const result = await runCli(['run', 'all'], { cwd: tree.root, env });
      expect(result.code).to.equal(0);
      expect(result.stdout.split('\n').filter((l) => l.startsWith('Would add')).map((l) => l.split(' ')[2])).to.deep.equal(['tool', 'everything', 'v1-10-0']);
      expect(result.stdout.match(/Reading metadata\.json\.\.\./g)).to.have.length(3);
    });

    it('without --start-server validates, shows what it would serve, says it is not starting, and exits 0', async () => {
      const result = await runCli(['run', 'test/everything@1.0.0'], { cwd: tree.root, env });
      expect(result.code).to.equal(0);
      expect(result.stdout.split('\n')).to.deep.equal([
        'Reading metadata.json...',
        `Would add everything endpoints (command ${process.execPath})`,
        'Configuration is valid. Not starting the gateway: add --start-server to serve 1 server on port 8099',
        '',
      ]);
    });

    it('reads packages from --packages-dir over $FMCP_PACKAGES_DIR', async () => {
      const result = await runCli(['run', 'test/versions', '--packages-dir', packages], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: join(tree.root, 'nowhere') } });
      expect(result.code).to.equal(0);
    });

    it('reads packages from ./.fmcp-packages without FMCP_PACKAGES_DIR', async () => {
      tree.write('home/.fmcp-packages/me/local/2.0.0/metadata.json', { mcpServers: { local: { command: 'node' } } });
      const result = await runCli(['run', 'me/local'], { cwd: join(tree.root, 'home'), env: { FMCP_PACKAGES_DIR: undefined } });
      expect(result.stdout).to.contain('Would add local endpoints');
    });
  });

  describe('bad input: one line on stderr, a non-zero exit, no stack trace', () => {
    const cases: { what: string; args: string[]; code: number; line: RegExp; stdout?: string }[] = [
      {
        what: 'an unknown package (lists what is installed)',
        args: ['run', 'nobody/nothing', '--start-server'],
        code: 2,
        line: /^fluidmcp: Package nobody\/nothing is not installed in .*packages: install it there or set FMCP_PACKAGES_DIR \(see `fluidmcp list`\)\. Installed: other\/tool@0\.1\.0, other\/tool@0\.2\.0-beta\.1, test\/everything@1\.0\.0, test\/versions@1\.2\.0, test\/versions@1\.9\.0, test\/versions@1\.10\.0$/,
      },
      {
        what: 'an unknown version (lists the installed versions)',
        args: ['run', 'test/versions@2.0.0', '--start-server'],
        code: 2,
        line: /Package test\/versions@2\.0\.0 is not installed .*\. Installed versions of test\/versions: 1\.2\.0, 1\.9\.0, 1\.10\.0$/,
      },
      { what: 'a malformed package name', args: ['run', 'just-a-name'], code: 2, line: /^fluidmcp: Invalid package "just-a-name": expected author\/package@version, author\/package, "all" or a path to a metadata\.json$/ },
      { what: 'a config file that does not exist', args: ['run', '--file', 'missing.json', '--start-server'], code: 2, line: /^fluidmcp: Cannot read \/.*\/missing\.json: no such file$/ },
      { what: 'invalid JSON', args: ['run', '--file', 'bad/invalid.json', '--start-server'], code: 2, line: /^fluidmcp: \/.*\/bad\/invalid\.json is not valid JSON: / },
      { what: 'an invalid field', args: ['run', 'bad/args.json', '--start-server'], code: 2, line: /^fluidmcp: \/.*\/bad\/args\.json: mcpServers\.gmail\.args: expected a list of strings$/ },
      { what: 'a file without servers', args: ['run', '--file', 'bad/empty.json'], code: 2, line: /^fluidmcp: nothing to serve: .*empty\.json has no servers in "mcpServers"$/ },
      {
        what: 'an unknown auth type',
        args: ['run', '--file', 'bad/auth.json', '--start-server', '--port', '0'],
        code: 2,
        line: /^fluidmcp: \/.*\/bad\/auth\.json: mcpServers\.gmail\.auth: no plugin handles auth "magic-link" \(known: .*\)\. Load a plugin that does with --plugin <module> or a "plugins" list in the config$/,
      },
      { what: 'a plugin file that does not exist', args: ['run', '--file', 'configs/config.json', '--plugin', './nope.mjs'], code: 2, line: /^fluidmcp: Cannot load plugin "\.\/nope\.mjs": no such file \/.*\/nope\.mjs$/ },
      { what: 'a plugin module that is not installed', args: ['run', '--file', 'configs/config.json', '--plugin', 'fluidmcp-plugin-not-installed'], code: 2, line: /^fluidmcp: Cannot load plugin "fluidmcp-plugin-not-installed": no module of that name is installed/ },
      { what: 'a plugin that throws when imported', args: ['run', '--file', 'configs/config.json', '--plugin', 'bad/throws.mjs'], code: 2, line: /^fluidmcp: Cannot load plugin "bad\/throws\.mjs": plugin exploded at import$/ },
      { what: 'a plugin module without a plugin export', args: ['run', '--file', 'configs/config.json', '--plugin', 'bad/no-export.mjs'], code: 2, line: /^fluidmcp: Cannot load plugin "bad\/no-export\.mjs": it has neither a default export nor a named "plugin" export/ },
      { what: 'a plugin of the wrong shape', args: ['run', '--file', 'configs/config.json', '--plugin', 'bad/shape.mjs'], code: 2, line: /^fluidmcp: Cannot load plugin "bad\/shape\.mjs": Invalid plugin "shapeless": register must be a function$/ },
      { what: 'a missing plugin named in the config', args: ['run', '--file', 'bad/config-plugin.json'], code: 2, line: /^fluidmcp: Cannot load plugin ".*\/bad\/missing-plugin\.mjs": no such file/ },
      { what: 'a port that is not a number', args: ['run', 'test/everything', '--port', 'http'], code: 2, line: /^fluidmcp: --port must be a whole number from 0 to 65535, got "http"/ },
      { what: 'a port out of range', args: ['run', 'test/everything', '--port', '70000'], code: 2, line: /^fluidmcp: --port must be a whole number from 0 to 65535, got "70000"/ },
      { what: 'a public URL that is not a URL', args: ['run', 'test/everything', '--public-url', 'gw.example.com'], code: 2, line: /^fluidmcp: --public-url must be an http\(s\) URL/ },
      { what: 'an unknown log level', args: ['run', 'test/everything', '--log-level', 'loud'], code: 2, line: /^fluidmcp: Invalid values: Argument: log-level, Given: "loud", Choices: "fatal", /},
      { what: 'nothing to run', args: ['run', '--start-server'], code: 2, line: /^fluidmcp: say what to run: a package such as author\/pkg@1\.0\.0, "all", a path to a metadata\.json, or --file config\.json$/ },
      { what: 'both a package and --file', args: ['run', 'test/everything', '--file', 'configs/config.json'], code: 2, line: /^fluidmcp: give either a package \(test\/everything\) or --file \(configs\/config\.json\), not both$/ },
      { what: '--file without a path', args: ['run', '--file'], code: 2, line: /^fluidmcp: --file needs a path: --file config\.json$/, stdout: '' },
      { what: '--file without a path, before another option', args: ['run', '--file', '--start-server'], code: 2, line: /^fluidmcp: --file needs a path: --file config\.json$/, stdout: '' },
      {
        what: '--file and several words',
        args: ['run', '--file', 'configs/config.json', 'extra', 'positional', 'args'],
        code: 2,
        line: /^fluidmcp: give either a package \(extra positional args\) or --file \(configs\/config\.json\), not both$/,
        stdout: '',
      },
      { what: 'two packages', args: ['run', 'test/everything', 'other/tool'], code: 2, line: /^fluidmcp: give one package to run, not 2 \(test\/everything other\/tool\): "all" serves every installed package$/, stdout: '' },
      { what: 'an unknown option', args: ['run', 'test/everything', '--prot', '1'], code: 2, line: /^fluidmcp: Unknown arguments?: prot/ },
      { what: 'an unknown command', args: ['serve', 'test/everything'], code: 2, line: /^fluidmcp: unknown command "serve": the commands are run and list \(see fluidmcp --help\)$/ },
      { what: 'no command', args: [], code: 2, line: /^fluidmcp: give a command: run or list/ },
    ];
    // each case is its own process; run them a few at a time up front to keep the file fast
    const results = new Map<string, CliResult>();
    before(async function () {
      // 25 processes: a loaded machine needs more than the default 30 s (each still has runCli's own bound)
      this.timeout(150_000);
      const queue = [...cases];
      const worker = async (): Promise<void> => {
        for (let c = queue.shift(); c; c = queue.shift()) results.set(c.what, await runCli(c.args, { cwd: tree.root, env }));
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    });

    for (const c of cases) {
      it(`${c.what}: exit ${c.code}`, () => {
        const result = results.get(c.what)!;
        expect(result.code, result.stderr).to.equal(c.code);
        expect(oneErrorLine(result)).to.match(c.line);
        if (c.stdout !== undefined) expect(result.stdout).to.equal(c.stdout);
      });
    }

    it('"all" with nothing installed: exit 2, saying where it looked', async () => {
      const result = await runCli(['run', 'all'], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: join(tree.root, 'empty-packages') } });
      expect(result.code).to.equal(2);
      expect(oneErrorLine(result)).to.match(/^fluidmcp: no packages are installed in \/.*\/empty-packages: /);
    });

    it('an unknown package with nothing installed says so', async () => {
      const result = await runCli(['run', 'a/b'], { cwd: tree.root, env: { FMCP_PACKAGES_DIR: join(tree.root, 'empty-packages') } });
      expect(result.code).to.equal(2);
      expect(oneErrorLine(result)).to.match(/\. No packages are installed there yet$/);
    });

    describe('a port in use', () => {
      let blocker: Server;
      before((done) => {
        blocker = createServer().listen(0, '127.0.0.1', done);
      });
      after((done) => void blocker.close(() => done()));

      it('exits 1 with one line naming the address and what to do, leaving no server process behind', async () => {
      await noServerLeft();
        const port = (blocker.address() as { port: number }).port;
        const result = await runCli(['run', 'test/everything', '--start-server', '--port', String(port)], { cwd: tree.root, env });
        expect(result.code).to.equal(1);
        expect(oneErrorLine(result)).to.equal(`fluidmcp: Cannot listen on 127.0.0.1:${port}: the port is already in use (choose another with --port)`);
        expect(result.stdout).to.equal('Reading metadata.json...\n');
        await noServerLeft();
      });
    });
  });
});
