#!/usr/bin/env node
/**
 * `npm start`: the whole FluidMCP flow on one machine, offline. Starts a local OAuth 2.0 server with a
 * demo user, then the real `fluidmcp run` CLI serving examples/demo/config.json: `everything` (no login)
 * and `mailbox` (OAuth2 PKCE against the local server). Stops the authorization server when the gateway
 * exits, and stops the gateway on Ctrl-C or SIGTERM.
 *
 * Environment: DEMO_AUTH_PORT (default 9400) for the authorization server, DEMO_PORT (default 8099) for
 * the gateway, DEMO_PASSWORD (default "fluidmcp") for the demo user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quietProviderNotices, startDemoAuthServer, type DemoAuthServer } from './auth-server.js';
import { binNodeFlags } from '../../cli/bin-flags.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const demoDir = join(repoRoot, 'examples', 'demo');
const configFile = join(demoDir, 'config.json');
const cliMain = join(repoRoot, 'dist', 'cli', 'main.js');


/** What config.json was written for; other ports get a copy with their URLs. */
const CONFIG_AUTH_PORT = 9400;
const CLIENT_ID_ENV = 'DEMO_MAILBOX_CLIENT_ID';
const CLIENT_ID = 'fluidmcp-demo';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const fail = (line: string): never => {
  process.stderr.write(`demo: ${line}\n`);
  process.exit(1);
};

function portFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) fail(`${name} must be a port number from 1 to 65535, got "${raw}"`);
  return port;
}

/** config.json as is, or a temporary copy pointing at another authorization server port. */
function configFor(authPort: number): { file: string; cleanup(): void } {
  if (authPort === CONFIG_AUTH_PORT) return { file: configFile, cleanup: () => undefined };
  const text = readFileSync(configFile, 'utf8').replaceAll(`http://127.0.0.1:${CONFIG_AUTH_PORT}`, `http://127.0.0.1:${authPort}`);
  const config = JSON.parse(text) as { mcpServers: Record<string, { cwd?: string }> };
  // the copy lives elsewhere: pin each server's folder to where config.json would have put it
  for (const entry of Object.values(config.mcpServers)) entry.cwd = resolve(demoDir, entry.cwd ?? '.');
  const dir = mkdtempSync(join(tmpdir(), 'fluidmcp-demo-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What `fluidmcp run` prints once its own server listens (cli/run.ts printStarted). */
const READY_LINE = 'FluidMCP gateway ready at ';

/**
 * Forwards the gateway's stdout and resolves true once the gateway prints its ready line: only this
 * child's line counts, so another FluidMCP already answering on the port is never taken for it.
 * False when the child exits first or `timeoutMs` passes.
 */
function waitForReadyLine(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let tail = '';
    let settled = false;
    const done = (ready: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ready);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      if (settled) return;
      // a line may arrive in pieces: keep the unfinished one for the next chunk
      const lines = (tail + chunk.toString('utf8')).split('\n');
      tail = (lines.pop() ?? '').slice(-4096);
      if (lines.some((line) => line.startsWith(READY_LINE))) done(true);
    });
    child.once('exit', () => done(false));
  });
}

function nextSteps(gateway: string, auth: DemoAuthServer, password: string): void {
  const curl = (server: string, body: string, token: boolean): string[] => [
    `     curl -X POST ${gateway}/${server}/mcp \\`,
    ...(token ? ['       -H "Authorization: Bearer <access_token>" \\'] : []),
    '       -H "Content-Type: application/json" \\',
    `       -d '${body}'`,
  ];
  const lines = [
    '',
    '──────────────────────────────────────────────────────────────────────────────',
    ' FluidMCP demo is running',
    '',
    ` Authorization server: ${auth.issuer} (oidc-provider on loopback; in memory, development keys)`,
    ` Demo user:            any login name (try "alice"), password "${password}"`,
    ` Console:              ${gateway}/ (every server live, its tools, "Sign in" for the mailbox)`,
    '',
    ' 1. Open this URL in a browser, sign in, and press Continue on the consent page:',
    `      ${gateway}/mailbox/auth/login`,
    '    The gateway answers with JSON; copy token_data.access_token from it.',
    '',
    ' 2. Call the mailbox with your token (the seed\'s curl):',
    ...curl('mailbox', '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}', true),
    '',
    '    and see who the mailbox thinks you are:',
    ...curl('mailbox', '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}', true),
    '',
    '    Without the header you get 401 and a pointer to the login URL. Each token gets its own',
    '    mailbox process, which alone sees that token (in MAILBOX_ACCESS_TOKEN).',
    '',
    ' 3. The everything server needs no login:',
    ...curl('everything', '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}', false),
    '',
    ' Press Ctrl-C to stop.',
    '──────────────────────────────────────────────────────────────────────────────',
    '',
  ];
  for (const line of lines) say(line);
}

async function main(): Promise<void> {
  const authPort = portFrom('DEMO_AUTH_PORT', CONFIG_AUTH_PORT);
  const gatewayPort = portFrom('DEMO_PORT', 8099);
  const password = process.env.DEMO_PASSWORD || 'fluidmcp';
  const gateway = `http://localhost:${gatewayPort}`;

  quietProviderNotices();
  let auth: DemoAuthServer;
  try {
    auth = await startDemoAuthServer({ port: authPort, clientId: CLIENT_ID, redirectUri: `${gateway}/mailbox/auth/callback`, password });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `port ${authPort} is in use: run with DEMO_AUTH_PORT=<another port> npm start` : e.message;
    return fail(`cannot start the demo authorization server: ${why}`);
  }
  say(`Demo authorization server listening at ${auth.issuer}`);

  const config = configFor(authPort);
  const child = spawn(process.execPath, [...binNodeFlags(cliMain), cliMain, 'run', '--file', config.file, '--start-server', '--port', String(gatewayPort)], {
    // its own process group: Ctrl-C reaches this script, which stops the gateway once, gracefully
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, [CLIENT_ID_ENV]: CLIENT_ID },
  });

  let stopping = false;
  let ready = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    }
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  child.on('error', (err) => {
    process.stderr.write(`demo: cannot run ${cliMain}: ${err.message} (run npm run build first)\n`);
  });
  child.on('close', (code, signal) => {
    config.cleanup();
    void auth.close().then(() => {
      if (!stopping) {
        const hint = ready ? '' : ` (to use another gateway port, run DEMO_PORT=<port> npm start)`;
        process.stderr.write(`demo: the gateway exited (${signal ?? `code ${code}`}); the authorization server is stopped too${hint}\n`);
      }
      process.exit(code ?? (signal ? 1 : 0));
    });
  });

  ready = await waitForReadyLine(child, 60_000);
  if (ready) nextSteps(gateway, auth, password);
  else if (child.exitCode === null && child.signalCode === null && !stopping) {
    process.stderr.write(`demo: the gateway did not say it was ready within 60 s (Ctrl-C stops it)\n`);
  }
}

await main();
