// The FluidMCP console: one client of /api. Preact + htm, served by the gateway (no CDN, no build step).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html, api, Overview, ServerPage, LogTail, SignIn } from './views.js';

const HISTORY_SECONDS = 300;

/** Live state from GET /api/events: servers by name, and calls per second and latency per server. */
function useLive(enabled) {
  const [servers, setServers] = useState(new Map());
  const [activity, setActivity] = useState({ t: [], series: new Map() });
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    if (!enabled) return undefined;
    const source = new EventSource('/api/events');
    let pending = {};
    source.addEventListener('open', () => setConnected(true));
    source.addEventListener('error', () => setConnected(false));
    source.addEventListener('servers', (e) => {
      const list = JSON.parse(e.data).servers;
      setServers(new Map(list.map((s) => [s.name, s])));
    });
    source.addEventListener('server', (e) => {
      const s = JSON.parse(e.data);
      setServers((old) => new Map(old).set(s.name, s));
    });
    source.addEventListener('activity', (e) => {
      const data = JSON.parse(e.data);
      for (const [name, w] of Object.entries(data.servers)) pending[name] = w;
    });
    // one point a second per server, zero when nothing happened: a local clock, no request
    const tick = setInterval(() => {
      const now = Math.floor(Date.now() / 1000);
      const got = pending;
      pending = {};
      setActivity((old) => {
        const t = [...old.t, now].slice(-HISTORY_SECONDS);
        const series = new Map();
        const names = new Set([...old.series.keys(), ...Object.keys(got)]);
        for (const name of names) {
          const prev = old.series.get(name) ?? { calls: Array(old.t.length).fill(0), ms: Array(old.t.length).fill(null) };
          const w = got[name];
          series.set(name, {
            calls: [...prev.calls, w ? w.calls / 1 : 0].slice(-HISTORY_SECONDS),
            ms: [...prev.ms, w ? w.avgMs : null].slice(-HISTORY_SECONDS),
          });
        }
        return { t, series };
      });
    }, 1000);
    return () => {
      clearInterval(tick);
      source.close();
    };
  }, [enabled]);
  return { servers, activity, connected };
}

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  const match = /^#\/servers\/([^/]+)$/.exec(hash);
  return match ? { page: 'server', name: decodeURIComponent(match[1]) } : { page: 'overview' };
}

function App() {
  const [session, setSession] = useState(undefined);
  const route = useRoute();
  const check = () => api('/api/session').then((r) => setSession(r.ok ? r.data : { signedIn: false, error: r.status === 401 ? undefined : r.data?.error?.message }));
  useEffect(() => void check(), []);
  const live = useLive(session?.signedIn === true);

  if (session === undefined) return html`<main><p>Loading…</p></main>`;
  if (!session.signedIn) {
    return html`<main><h1>FluidMCP console</h1>${session.error ? html`<p role="alert">${session.error}</p>` : html`<${SignIn} onDone=${check} />`}</main>`;
  }
  const logout = session.tokenRequired
    ? html`<button type="button" onClick=${() => api('/api/logout', { method: 'POST', body: {} }).then(check)}>Sign out of the console</button>`
    : null;
  return html`
    <header class="top">
      <a class="brand" href="#/">FluidMCP console</a>
      <nav aria-label="Main"><a href="#/">Overview</a></nav>
      <span class=${live.connected ? 'live on' : 'live off'}>${live.connected ? 'Live' : 'Reconnecting…'}</span>
      ${logout}
    </header>
    <main>
      ${route.page === 'server'
        ? html`<${ServerPage} name=${route.name} server=${live.servers.get(route.name)} activity=${live.activity} />`
        : html`<${Overview} servers=${[...live.servers.values()]} activity=${live.activity} />`}
      <${LogTail} />
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
