import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';
import { ToolCard } from './tool-form.js';

export const html = htm.bind(h);

/** One call to /api: JSON in and out; changes carry the console header (same-origin only). */
export async function api(path, { method = 'GET', body, serverToken } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') {
    headers['x-fluidmcp-console'] = '1';
    headers['content-type'] = 'application/json';
  }
  if (serverToken) headers['x-server-authorization'] = `Bearer ${serverToken}`;
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
    const data = await res.json().catch(() => ({}));
    return { ok: res.ok, status: res.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: { error: { message: `The gateway did not answer: ${err.message}` } } };
  }
}

export const errorText = (r) => r.data?.error?.message ?? `HTTP ${r.status}`;

/** The server's token from a console sign-in: this tab's session storage only. */
export const tokens = {
  get: (name) => sessionStorage.getItem(`fluidmcp.token.${name}`) ?? undefined,
  set: (name, token) => sessionStorage.setItem(`fluidmcp.token.${name}`, token),
  clear: (name) => sessionStorage.removeItem(`fluidmcp.token.${name}`),
};

function duration(ms) {
  if (ms === undefined || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

export function StateBadge({ state }) {
  return html`<span class=${`state state-${String(state).replace(/\s+/g, '-')}`}>${state ?? 'unknown'}</span>`;
}

/** A button that asks first, in a modal dialog, then runs `action` and tells its outcome. */
export function ConfirmButton({ label, question, confirmLabel, action, onOutcome }) {
  const dialog = useRef(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    dialog.current.close();
    setBusy(true);
    const outcome = await action();
    setBusy(false);
    onOutcome?.(outcome);
  };
  return html`
    <button type="button" disabled=${busy} onClick=${() => dialog.current.showModal()}>${busy ? `${label}…` : label}</button>
    <dialog ref=${dialog} aria-label=${question}>
      <p>${question}</p>
      <div class="actions">
        <button type="button" class="danger" onClick=${run}>${confirmLabel}</button>
        <button type="button" onClick=${() => dialog.current.close()}>Cancel</button>
      </div>
    </dialog>`;
}

function restartAction(name, setMessage) {
  return html`<${ConfirmButton}
    label=${`Restart ${name}`}
    question=${`Restart ${name}? Every process of this server stops; calls in flight get an error.`}
    confirmLabel="Restart"
    action=${() => api(`/api/servers/${encodeURIComponent(name)}/restart`, { method: 'POST', body: {} })}
    onOutcome=${(r) => setMessage(r.ok ? `Restarted ${name}: ${r.data.stopped} process${r.data.stopped === 1 ? '' : 'es'} stopped, now ${r.data.state}.` : `Restart of ${name} failed: ${errorText(r)}`)}
  />`;
}

export function Overview({ servers, activity }) {
  const now = useNow();
  const [message, setMessage] = useState('');
  return html`
    <h1>Servers</h1>
    <p role="status" class="outcome">${message}</p>
    <div class="scroll">
      <table class="servers">
        <caption class="sr-only">Every server of this gateway, live</caption>
        <thead><tr>
          <th scope="col">Server</th><th scope="col">Transport</th><th scope="col">Auth</th><th scope="col">State</th>
          <th scope="col">Processes</th><th scope="col">Sessions</th><th scope="col">Calls in flight</th>
          <th scope="col">Restarts</th><th scope="col">Uptime</th><th scope="col">Last error</th><th scope="col">Actions</th>
        </tr></thead>
        <tbody>
          ${servers.map((s) => html`
            <tr key=${s.name} data-server=${s.name}>
              <th scope="row"><a href=${`#/servers/${encodeURIComponent(s.name)}`}>${s.name}</a></th>
              <td data-label="Transport">${s.transport}</td>
              <td data-label="Auth">${s.auth ?? 'none'}</td>
              <td data-label="State"><${StateBadge} state=${s.state} /></td>
              <td data-label="Processes">${s.instances?.length ?? 0}</td>
              <td data-label="Sessions">${s.sessions ?? 0}</td>
              <td data-label="Calls in flight">${s.inFlight ?? 0}</td>
              <td data-label="Restarts">${s.restarts ?? 0}</td>
              <td data-label="Uptime">${s.upSince ? duration(now - s.upSince) : '—'}</td>
              <td data-label="Last error" class="error-text">${s.lastError ?? ''}</td>
              <td data-label="Actions">${restartAction(s.name, setMessage)}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>
    <h2>Activity</h2>
    <div class="charts">
      ${servers.map((s) => html`<${ActivityChart} key=${s.name} name=${s.name} activity=${activity} />`)}
    </div>`;
}

/** Calls per second and mean latency of one server over the last minutes (uPlot). */
export function ActivityChart({ name, activity }) {
  const box = useRef(null);
  const plot = useRef(null);
  const series = activity.series.get(name);
  const data = [activity.t, series?.calls ?? activity.t.map(() => 0), series?.ms ?? activity.t.map(() => null)];
  useEffect(() => {
    const width = Math.max(260, Math.min(520, box.current.clientWidth || 320));
    plot.current = new uPlot({
      width,
      height: 160,
      series: [{}, { label: 'calls/s', stroke: '#2563eb', width: 1.5 }, { label: 'ms', stroke: '#d97706', width: 1, scale: 'ms' }],
      axes: [{}, { label: 'calls/s', size: 50 }, { side: 1, scale: 'ms', label: 'ms', size: 50, grid: { show: false } }],
      legend: { show: true, live: false },
    }, data, box.current);
    return () => plot.current.destroy();
  }, []);
  useEffect(() => plot.current?.setData(data), [activity]);
  const total = (series?.calls ?? []).reduce((a, b) => a + b, 0);
  return html`<figure class="chart">
    <figcaption>${name}: ${total} call${total === 1 ? '' : 's'} in the last ${Math.round(activity.t.length / 60) || 1} min</figcaption>
    <div ref=${box} role="img" aria-label=${`Calls per second and latency of ${name}`}></div>
  </figure>`;
}

/** The console's own sign-in (with --admin-token): sets an HttpOnly cookie. */
export function SignIn({ onDone }) {
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const token = new FormData(e.target).get('token');
    const r = await api('/api/login', { method: 'POST', body: { token } });
    if (r.ok) onDone();
    else setError(errorText(r));
  };
  return html`<form class="card" onSubmit=${submit}>
    <h2>Sign in</h2>
    <p>This gateway was started with an admin token. Type it to open the console.</p>
    <label for="admin-token">Admin token</label>
    <input id="admin-token" name="token" type="password" autocomplete="current-password" required />
    <button type="submit">Sign in</button>
    ${error && html`<p role="alert" class="error-text">${error}</p>`}
  </form>`;
}

/** "Sign in" for an OAuth package: the gateway's own login in a popup; its JSON answer holds the token. */
function OAuthSignIn({ server, onToken }) {
  const [status, setStatus] = useState('');
  const start = () => {
    const popup = window.open(server.login, 'fluidmcp-login', 'popup,width=520,height=700');
    if (!popup) {
      setStatus('The browser blocked the sign-in window: allow pop-ups for this page.');
      return;
    }
    setStatus('Waiting for the sign-in window…');
    const timer = setInterval(() => {
      if (popup.closed) {
        clearInterval(timer);
        setStatus((s) => (s.startsWith('Waiting') ? 'The sign-in window was closed before the login finished.' : s));
        return;
      }
      let path;
      try {
        path = popup.location.pathname; // readable only once the provider sent it back to this gateway
      } catch {
        return;
      }
      if (!path.endsWith('/auth/callback') || popup.document.readyState !== 'complete') return;
      clearInterval(timer);
      const answer = readJson(popup.document);
      popup.close();
      const token = answer?.token_data?.access_token;
      if (answer?.success && typeof token === 'string') onToken(token);
      else setStatus(`Sign-in failed: ${answer?.error?.message ?? 'the gateway did not answer with a token'}`);
    }, 250);
  };
  return html`<button type="button" onClick=${start}>Sign in</button> <span role="status">${status}</span>`;
}

/** The JSON a browser shows for an application/json page (its viewer may add controls around it). */
function readJson(doc) {
  for (const text of [doc.querySelector('pre')?.textContent, doc.body?.textContent]) {
    if (!text) continue;
    const start = text.indexOf('{');
    const end = text.lastIndexOf('}');
    if (start === -1 || end < start) continue;
    try {
      return JSON.parse(text.slice(start, end + 1));
    } catch {
      // try the next candidate
    }
  }
  return undefined;
}

function Credentials({ server, token, setToken, setMessage }) {
  const [typed, setTyped] = useState('');
  if (!server?.auth) return null;
  return html`<section class="card" aria-labelledby="credentials-title">
    <h2 id="credentials-title">Credentials for ${server.name}</h2>
    ${token
      ? html`<p>Calls from this console carry a token for ${server.name}, kept in this tab's session storage only. <button type="button" onClick=${() => setToken(undefined)}>Forget the token</button></p>`
      : html`<p>${server.name} needs credentials (${server.auth}).</p>`}
    ${server.login && !token ? html`<${OAuthSignIn} server=${server} onToken=${(t) => { setToken(t); setMessage(`Signed in to ${server.name}.`); }} />` : null}
    ${!token ? html`<form class="inline" onSubmit=${(e) => { e.preventDefault(); if (typed) setToken(typed); }}>
      <label for="server-token">Or paste a token or key for ${server.name}</label>
      <input id="server-token" type="password" autocomplete="off" value=${typed} onInput=${(e) => setTyped(e.target.value)} />
      <button type="submit">Use it</button>
    </form>` : null}
  </section>`;
}

export function ServerPage({ name, server, activity }) {
  const now = useNow();
  const [token, setTokenState] = useState(tokens.get(name));
  const [lists, setLists] = useState({});
  const [message, setMessage] = useState('');
  const setToken = (t) => {
    if (t) tokens.set(name, t);
    else tokens.clear(name);
    setTokenState(t);
  };
  const load = async () => {
    const out = {};
    for (const kind of ['tools', 'resources', 'prompts']) {
      const r = await api(`/api/servers/${encodeURIComponent(name)}/${kind}`, { serverToken: token });
      out[kind] = r.ok ? { items: r.data[kind], supported: r.data.supported } : { error: errorText(r), status: r.status };
    }
    setLists(out);
  };
  useEffect(() => void load(), [name, token]);
  if (!server) return html`<h1>${name}</h1><p>Loading, or no server by that name. <a href="#/">Back to the overview</a></p>`;
  return html`
    <p><a href="#/">← All servers</a></p>
    <h1>${name} <${StateBadge} state=${server.state} /></h1>
    <p role="status" class="outcome">${message}</p>
    <dl class="facts">
      <dt>Transport</dt><dd>${server.transport}</dd>
      <dt>Auth</dt><dd>${server.auth ?? 'none'}</dd>
      <dt>Sessions</dt><dd>${server.sessions}${sessionBreakdown(server.sessionTransports)}</dd>
      <dt>Calls in flight</dt><dd>${server.inFlight}</dd>
      <dt>Restarts</dt><dd>${server.restarts}</dd>
      <dt>Uptime</dt><dd>${server.upSince ? duration(now - server.upSince) : '—'}</dd>
      <dt>Last error</dt><dd class=${server.lastError ? 'error-text' : ''}>${server.lastError ?? 'none'}</dd>
    </dl>
    <div class="actions">${restartAction(name, setMessage)}</div>
    <h2>Processes</h2>
    ${server.instances.length === 0 ? html`<p>None running${server.state === 'on demand' ? ': one starts for each caller' : ''}.</p>` : html`
    <div class="scroll"><table>
      <thead><tr><th scope="col">Process</th><th scope="col">State</th><th scope="col">PID</th><th scope="col">Calls in flight</th><th scope="col">Restarts</th><th scope="col">Uptime</th><th scope="col">Actions</th></tr></thead>
      <tbody>${server.instances.map((i) => html`<tr key=${i.id}>
        <th scope="row">${i.id}</th><td><${StateBadge} state=${i.state} /></td><td>${i.pid ?? '—'}</td><td>${i.inFlight}</td><td>${i.restarts}</td>
        <td>${i.upSince ? duration(now - i.upSince) : '—'}</td>
        <td>${i.id === 'shared' ? '' : html`<${ConfirmButton} label=${`Stop ${i.id}`} question=${`Stop process ${i.id} of ${name}? Its sessions end (their clients initialize again); its caller's next call starts a new one.`} confirmLabel="Stop"
          action=${() => api(`/api/servers/${encodeURIComponent(name)}/instances/${i.id}/stop`, { method: 'POST', body: {} })}
          onOutcome=${(r) => setMessage(r.ok ? `Stopped process ${i.id}.` : `Stopping ${i.id} failed: ${errorText(r)}`)} />`}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Credentials} server=${server} token=${token} setToken=${setToken} setMessage=${setMessage} />
    <h2>Tools</h2>
    ${listBody(lists.tools, (tools) => html`<div class="tools">${tools.map((t) => html`<${ToolCard} key=${t.name} server=${name} tool=${t} token=${token} />`)}</div>`)}
    <h2>Resources</h2>
    ${listBody(lists.resources, (items) => html`<ul class="plain">${items.map((r) => html`<li key=${r.uri}><code>${r.uri}</code> ${r.name ?? ''} ${r.mimeType ? html`<small>(${r.mimeType})</small>` : ''}</li>`)}</ul>`)}
    <h2>Prompts</h2>
    ${listBody(lists.prompts, (items) => html`<ul class="plain">${items.map((p) => html`<li key=${p.name}><strong>${p.name}</strong> ${p.description ?? ''}</li>`)}</ul>`)}
    <h2>Activity</h2>
    <${ActivityChart} name=${name} activity=${activity} />`;
}

function listBody(list, render) {
  if (!list) return html`<p>Loading…</p>`;
  if (list.error) return html`<p role="alert" class="error-text">${list.error}</p>`;
  if (list.supported === false) return html`<p>This server does not offer any.</p>`;
  if (list.items.length === 0) return html`<p>None.</p>`;
  return render(list.items);
}

const LEVELS = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** The gateway's log as written (redacted by the gateway), live, filterable. */
export function LogTail() {
  const [lines, setLines] = useState([]);
  const [filter, setFilter] = useState('');
  const [level, setLevel] = useState('30');
  useEffect(() => {
    const source = new EventSource('/api/logs');
    source.addEventListener('log', (e) => {
      let entry;
      try {
        entry = JSON.parse(e.data);
      } catch {
        entry = { msg: e.data, level: 30 };
      }
      setLines((old) => [...old, entry].slice(-500));
    });
    return () => source.close();
  }, []);
  const shown = lines.filter((l) => (l.level ?? 30) >= Number(level) && (filter === '' || JSON.stringify(l).toLowerCase().includes(filter.toLowerCase())));
  return html`<section class="log" aria-labelledby="log-title">
    <h2 id="log-title">Log</h2>
    <div class="inline">
      <label for="log-filter">Filter the log</label>
      <input id="log-filter" type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
      <label for="log-level">Lowest level</label>
      <select id="log-level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
        ${Object.entries(LEVELS).map(([v, n]) => html`<option value=${v}>${n}</option>`)}
      </select>
    </div>
    <ol class="lines" aria-live="off">
      ${shown.slice(-200).map((l, i) => {
        const { time, level: lv, msg, ...rest } = l;
        const extra = Object.keys(rest).length ? JSON.stringify(rest) : '';
        return html`<li key=${i} class=${`lv-${LEVELS[lv] ?? 'info'}`}><time>${time ? new Date(time).toLocaleTimeString() : ''}</time> <b>${LEVELS[lv] ?? lv}</b> ${msg} <code>${extra}</code></li>`;
      })}
    </ol>
  </section>`;
}

const TRANSPORT_NAMES = { 'streamable-http': 'Streamable HTTP', sse: 'legacy HTTP+SSE', channel: 'group links' };

/** " (2 Streamable HTTP, 3 legacy HTTP+SSE)": the kinds a server's sessions are, those it has. */
function sessionBreakdown(byTransport) {
  const parts = Object.entries(byTransport ?? {}).filter(([, n]) => n > 0).map(([t, n]) => `${n} ${TRANSPORT_NAMES[t] ?? t}`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

