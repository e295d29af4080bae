#!/usr/bin/env node
// A mock mailbox: a small real MCP server (stdio) that needs an OAuth access token, the way a Gmail
// server would. FluidMCP starts one copy per signed-in user and hands it that user's token in
// MAILBOX_ACCESS_TOKEN. Its tools refuse to work without it and show which identity they run as:
// a short hash of the token, never the token. With MAILBOX_USERINFO_URL set, it also asks the
// provider who the token belongs to, as a real API would. Nothing is written to stdout but MCP.
import { createHash } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const token = process.env.MAILBOX_ACCESS_TOKEN || undefined;
const userinfoUrl = process.env.MAILBOX_USERINFO_URL || undefined;
const tokenHash = token ? createHash('sha256').update(token).digest('hex').slice(0, 12) : undefined;

const text = (t) => ({ content: [{ type: 'text', text: t }] });
const refuse = (why) => ({ isError: true, content: [{ type: 'text', text: why }] });

const NO_TOKEN =
  'No access token: MAILBOX_ACCESS_TOKEN is not set, so the mailbox stays closed. ' +
  'Run this server through FluidMCP: sign in at <gateway>/mailbox/auth/login, then call ' +
  '/mailbox/mcp with "Authorization: Bearer <access_token>".';

let user; // { name } once the provider confirmed the token
/** Who the token belongs to: the provider's userinfo answer when configured, else the token's hash. */
async function whoIsIt() {
  if (!userinfoUrl) return { ok: true, name: undefined };
  if (user) return { ok: true, name: user.name };
  try {
    const res = await fetch(userinfoUrl, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      return { ok: false, why: `The provider rejected the access token (HTTP ${res.status}): it expired or was revoked. Sign in again at <gateway>/mailbox/auth/login.` };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { ok: false, why: `The provider's userinfo endpoint answered HTTP ${res.status}: try again later.` };
    }
    const info = await res.json();
    user = { name: String(info.preferred_username ?? info.name ?? info.email ?? info.sub ?? 'unknown') };
    return { ok: true, name: user.name };
  } catch (err) {
    return { ok: false, why: `Cannot reach the provider at MAILBOX_USERINFO_URL (${err.cause?.code ?? err.name}): try again later.` };
  }
}

/** Runs a tool only with a usable token. */
function guarded(fn) {
  return async (args) => {
    if (!token) return refuse(NO_TOKEN);
    const who = await whoIsIt();
    if (!who.ok) return refuse(who.why);
    return fn(args, who.name ?? `token ${tokenHash}`);
  };
}

function mailboxOf(owner) {
  return [
    { id: '1', from: 'welcome@fluidmcp.example', subject: `Welcome, ${owner}`, body: `Hello ${owner}, this mailbox opened because FluidMCP passed your access token to this server process, and to no other.` },
    { id: '2', from: 'security@fluidmcp.example', subject: 'How your token travels', body: 'The gateway returned the token to you as JSON, you sent it back as a Bearer header, and the gateway started this process with it in MAILBOX_ACCESS_TOKEN. The gateway keeps no copy.' },
    { id: '3', from: 'team@fluidmcp.example', subject: 'Lunch on Friday?', body: 'Pizza or ramen?' },
  ];
}

const server = new McpServer({ name: 'mailbox', version: '1.0.0' });

server.registerTool('whoami', {
  description: 'Shows which identity this mailbox runs as: the user and a short hash of the access token (never the token), and the process id.',
  inputSchema: {},
}, guarded(async (_args, owner) => text(JSON.stringify({ user: owner, token_sha256: tokenHash, pid: process.pid }))));

server.registerTool('list_messages', {
  description: 'Lists the messages in the signed-in user\'s inbox.',
  inputSchema: { limit: z.number().int().min(1).max(50).optional().describe('most messages to list (default 10)') },
}, guarded(async ({ limit = 10 }, owner) => {
  const lines = mailboxOf(owner).slice(0, limit).map((m) => `${m.id}  ${m.from}  ${m.subject}`);
  return text(`Inbox of ${owner}:\n${lines.join('\n')}`);
}));

server.registerTool('read_message', {
  description: 'Reads one message by its id (see list_messages).',
  inputSchema: { id: z.string().describe('the message id, such as "1"') },
}, guarded(async ({ id }, owner) => {
  const message = mailboxOf(owner).find((m) => m.id === id);
  if (!message) return refuse(`No message with id "${id}" in the inbox of ${owner}: call list_messages to see the ids.`);
  return text(`From: ${message.from}\nTo: ${owner}\nSubject: ${message.subject}\n\n${message.body}`);
}));

await server.connect(new StdioServerTransport());
