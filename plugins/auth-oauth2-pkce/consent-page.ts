import type { ServerResponse } from 'node:http';

/** Text made safe for HTML element content and double-quoted attribute values. */
class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** A template tag that escapes every interpolated value unless it is already SafeHtml: escaped by construction. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, i) => {
    const parts = Array.isArray(value) ? value : [value];
    out += parts.map((v) => (v instanceof SafeHtml ? v.text : escape(v))).join('') + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // not no-referrer: Chromium then sends the form's POST with "Origin: null", which the gateway refuses
  'referrer-policy': 'same-origin',
  // no script at all; frame-ancestors keeps the Allow button from being clickjacked
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
};

function page(title: string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2rem}button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.6rem}</style>
</head><body>${body}</body></html>`.text;
}

export interface ConsentView {
  readonly packageName: string;
  readonly clientName: string;
  readonly clientId: string;
  readonly redirectHost: string;
  readonly scopes: readonly string[];
  readonly action: string;
  readonly request: string;
  readonly csrf: string;
}

/** The consent page: who asks, where the answer goes, which package; "Allow" and "Deny". */
export function sendConsentPage(res: ServerResponse, view: ConsentView, headers: Record<string, string | string[]>): void {
  const body = html`<h1>Allow access to ${view.packageName}?</h1>
<p>The application <strong>${view.clientName}</strong> asks to use the MCP server <strong>${view.packageName}</strong> on your behalf.</p>
<p>After you sign in, you will be sent back to <strong>${view.redirectHost}</strong>.${view.scopes.length > 0 ? html` It asks for: ${view.scopes.map((s, i) => html`${i > 0 ? ', ' : ''}<code>${s}</code>`)}.` : ''}</p>
<p>Only allow it if you started this sign-in yourself and trust <strong>${view.redirectHost}</strong>.</p>
<form method="post" action="${view.action}">
<input type="hidden" name="request" value="${view.request}">
<input type="hidden" name="csrf" value="${view.csrf}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
<p><small>Client id: <code>${view.clientId.length > 60 ? `${view.clientId.slice(0, 60)}…` : view.clientId}</code></small></p>`;
  const text = page(`Allow access to ${view.packageName}?`, body);
  res.writeHead(200, { ...PAGE_HEADERS, ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** An error shown to the person in the browser, never a redirect: the redirect URI cannot be trusted. */
export function sendErrorPage(res: ServerResponse, status: number, error: string, description: string): void {
  const text = page('Sign-in failed', html`<h1>Sign-in failed</h1><p><code>${error}</code>: ${description}</p><p>Start again from your MCP client.</p>`);
  res.writeHead(status, { ...PAGE_HEADERS, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
