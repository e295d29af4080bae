// A minimal MCP server over stdio with one tool, get-env (as server-everything's: the process's
// environment as JSON text). Unlike server-everything it exits as soon as stdin closes, so a gateway
// that stops it does not wait for its grace period: the CLI tests of the example plugins stay fast.
import { createInterface } from 'node:readline';

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const lines = createInterface({ input: process.stdin });

lines.on('line', (line) => {
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    return;
  }
  if (message.id === undefined || typeof message.method !== 'string') return;
  const { id, method, params } = message;
  if (method === 'initialize') {
    send({ jsonrpc: '2.0', id, result: { protocolVersion: params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'env-server', version: '1.0.0' } } });
  } else if (method === 'tools/list') {
    send({ jsonrpc: '2.0', id, result: { tools: [{ name: 'get-env', description: 'Returns the environment', inputSchema: { type: 'object' } }] } });
  } else if (method === 'tools/call' && params?.name === 'get-env') {
    send({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: JSON.stringify(process.env) }] } });
  } else if (method === 'ping') {
    send({ jsonrpc: '2.0', id, result: {} });
  } else {
    send({ jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${method}` } });
  }
});
lines.on('close', () => process.exit(0));
