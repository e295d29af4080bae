/**
 * The bench's `floor` target: a bare `node:http` server that answers the bench's Streamable HTTP
 * client itself (initialize, notifications/initialized, tools/call echo, DELETE) with no upstream
 * at all. It does the least any gateway built on `node:http` must do per call (parse the request,
 * JSON.parse the body, JSON.stringify an answer, write it), so its rate on this machine is a ceiling
 * for such a gateway, measured in the same run as the others: a goal above it cannot be met by
 * tuning the gateway's own code.
 *
 * Usage: node dist/bench/floor-server.js --port <n>   (prints "floor ready at <url>")
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

interface Rpc {
  id?: number | string;
  method?: string;
  params?: { protocolVersion?: string; arguments?: { message?: string } };
}

function reply(res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function answer(req: IncomingMessage, res: ServerResponse, raw: Buffer): void {
  if (req.method === 'DELETE') {
    res.writeHead(200).end();
    return;
  }
  let msg: Rpc;
  try {
    msg = JSON.parse(raw.toString('utf8')) as Rpc;
  } catch {
    reply(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    return;
  }
  if (msg.id === undefined) {
    res.writeHead(202).end();
    return;
  }
  if (msg.method === 'initialize') {
    const result = { protocolVersion: msg.params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'floor', version: '1' } };
    reply(res, 200, { jsonrpc: '2.0', id: msg.id, result }, { 'mcp-session-id': randomUUID() });
    return;
  }
  if (msg.method === 'tools/call') {
    reply(res, 200, { jsonrpc: '2.0', id: msg.id, result: { content: [{ type: 'text', text: `Echo: ${msg.params?.arguments?.message}` }] } });
    return;
  }
  reply(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `Method not found: ${msg.method}` } });
}

const portArg = process.argv.indexOf('--port');
const port = portArg === -1 ? 0 : Number(process.argv[portArg + 1]);
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => answer(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
});
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  process.stdout.write(`floor ready at http://127.0.0.1:${bound}\n`);
});
const stop = (): void => {
  server.close();
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
