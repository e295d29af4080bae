/**
 * The bench's `relay` target: the least any gateway built on `node:http` must do to serve an MCP
 * server over stdio, with no check, session, limit, timeout or log. It starts the upstream command
 * given after `--`, does its initialize handshake once, answers each client's initialize from the kept
 * result, and relays every request: JSON.parse the body, give it an upstream id, write it to the
 * server's stdin (the writes of one event-loop turn joined in one write, as the gateway does), and on
 * the server's answer JSON.parse the line, put the client's id back, JSON.stringify and write it.
 *
 * Its rate in the same run as the gateway and mcp-proxy is the ceiling of what a `node:http` gateway
 * in front of this server reaches on this machine: `relay/mcp-proxy` is the most any such gateway can
 * claim against mcp-proxy, and `gateway/relay` is what the gateway's own work (checks, sessions,
 * timeouts, logs) costs. The `floor` target has no upstream at all: it is the ceiling of node:http alone.
 *
 * Usage: node dist/bench/relay-server.js --port <n> -- <command> [args…]   (prints "relay ready at <url>")
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';

interface Rpc {
  id?: number | string | null;
  method?: string;
  params?: { protocolVersion?: string };
  result?: unknown;
}

const dash = process.argv.indexOf('--');
const portArg = process.argv.indexOf('--port');
const port = portArg === -1 ? 0 : Number(process.argv[portArg + 1]);
if (dash === -1 || dash + 1 >= process.argv.length) {
  process.stderr.write('usage: relay-server.js --port <n> -- <command> [args…]\n');
  process.exit(2);
}
const child = spawn(process.argv[dash + 1]!, process.argv.slice(dash + 2), { stdio: ['pipe', 'pipe', 'inherit'] });
child.on('exit', (code) => {
  process.stderr.write(`relay: the upstream server exited (${code})\n`);
  process.exit(1);
});

/** upstream id → the client's response and id */
const pending = new Map<number, { res: ServerResponse; id: unknown }>();
let nextId = 1;
let outgoing = '';
let flushScheduled = false;
const flush = (): void => {
  flushScheduled = false;
  child.stdin.write(outgoing);
  outgoing = '';
};
function send(text: string): void {
  outgoing += text + '\n';
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function reply(res: ServerResponse, text: string, extra?: Record<string, string>): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

let initResult: unknown;
const HANDSHAKE_ID = 0;
let rest = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk: string) => {
  let text = rest + chunk;
  let nl = text.indexOf('\n');
  let start = 0;
  while (nl !== -1) {
    const msg = JSON.parse(text.slice(start, nl)) as Rpc;
    start = nl + 1;
    nl = text.indexOf('\n', start);
    if (typeof msg.id !== 'number') continue;
    if (msg.id === HANDSHAKE_ID) {
      initResult = msg.result;
      send('{"jsonrpc":"2.0","method":"notifications/initialized"}');
      listen();
      continue;
    }
    const call = pending.get(msg.id);
    if (!call) continue;
    pending.delete(msg.id);
    msg.id = call.id as number;
    reply(call.res, JSON.stringify(msg));
  }
  rest = text.slice(start);
  text = '';
});
send(JSON.stringify({ jsonrpc: '2.0', id: HANDSHAKE_ID, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'relay', version: '1' } } }));

const server = createServer((req, res) => {
  if (req.method === 'DELETE') {
    res.writeHead(200).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const msg = JSON.parse((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8')) as Rpc;
    if (msg.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    if (msg.method === 'initialize') {
      const result = { ...(initResult as object), protocolVersion: msg.params?.protocolVersion ?? '2025-06-18' };
      reply(res, JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }), { 'mcp-session-id': randomUUID() });
      return;
    }
    const id = nextId++;
    pending.set(id, { res, id: msg.id });
    msg.id = id;
    send(JSON.stringify(msg));
  });
});

function listen(): void {
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    process.stdout.write(`relay ready at http://127.0.0.1:${bound}\n`);
  });
}
const stop = (): void => {
  server.close();
  server.closeAllConnections();
  child.removeAllListeners('exit');
  child.kill();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
