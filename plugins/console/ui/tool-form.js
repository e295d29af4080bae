import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';
import { api, errorText } from './views.js';

const html = htm.bind(h);

const kindOf = (schema) => {
  const type = Array.isArray(schema?.type) ? schema.type.find((t) => t !== 'null') : schema?.type;
  if (Array.isArray(schema?.enum)) return 'enum';
  return type ?? 'json';
};

/** The arguments typed into the form, by the tool's input schema; throws a message for a bad field. */
function readArguments(form, properties) {
  const args = {};
  for (const [name, schema] of Object.entries(properties)) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    const kind = kindOf(schema);
    if (kind === 'boolean') {
      if (input.checked) args[name] = true;
      else if (input.dataset.touched) args[name] = false;
      continue;
    }
    const raw = input.value;
    if (raw === '') continue;
    if (kind === 'number' || kind === 'integer') {
      const n = Number(raw);
      if (!Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n))) throw new Error(`${name} must be ${kind === 'integer' ? 'a whole number' : 'a number'}`);
      args[name] = n;
    } else if (kind === 'string' || kind === 'enum') {
      args[name] = kind === 'enum' && typeof schema.enum[0] === 'number' ? Number(raw) : raw;
    } else {
      try {
        args[name] = JSON.parse(raw);
      } catch {
        throw new Error(`${name} must be JSON (${kind})`);
      }
    }
  }
  return args;
}

function Field({ tool, name, schema, required }) {
  const id = `${tool}--${name}`;
  const hint = schema.description ? html`<small id=${`${id}-hint`}>${schema.description}</small>` : null;
  const described = schema.description ? `${id}-hint` : undefined;
  const kind = kindOf(schema);
  let control;
  if (kind === 'boolean') {
    control = html`<input id=${id} name=${name} type="checkbox" aria-describedby=${described} defaultChecked=${schema.default === true} onChange=${(e) => (e.target.dataset.touched = '1')} />`;
  } else if (kind === 'enum') {
    control = html`<select id=${id} name=${name} aria-describedby=${described} required=${required}>
      ${required ? null : html`<option value="">(none)</option>`}
      ${schema.enum.map((v) => html`<option value=${String(v)} selected=${schema.default === v}>${String(v)}</option>`)}
    </select>`;
  } else if (kind === 'number' || kind === 'integer') {
    control = html`<input id=${id} name=${name} type="number" step=${kind === 'integer' ? '1' : 'any'} aria-describedby=${described} required=${required} defaultValue=${schema.default ?? ''} />`;
  } else if (kind === 'string') {
    control = html`<input id=${id} name=${name} type="text" aria-describedby=${described} required=${required} defaultValue=${schema.default ?? ''} />`;
  } else {
    control = html`<textarea id=${id} name=${name} rows="3" aria-describedby=${described} required=${required} placeholder=${kind === 'array' ? '[ ]' : '{ }'} defaultValue=${schema.default !== undefined ? JSON.stringify(schema.default) : ''}></textarea>`;
  }
  return html`<div class="field">
    <label for=${id}>${name}${required ? html`<span aria-hidden="true"> *</span>` : ''}</label>
    ${control} ${hint}
  </div>`;
}

/** A tool's result as the server gave it: text, images, and JSON for anything else. */
function Result({ outcome }) {
  if (!outcome) return null;
  if (!outcome.ok) return html`<div class="result error" role="alert"><strong>Error:</strong> ${outcome.message}</div>`;
  const result = outcome.result;
  const content = Array.isArray(result.content) ? result.content : [];
  return html`<div class=${result.isError ? 'result error' : 'result'} role=${result.isError ? 'alert' : 'status'}>
    ${result.isError ? html`<strong>The tool reported an error:</strong>` : null}
    ${content.map((c, i) => {
      if (c.type === 'text') return html`<pre key=${i}>${c.text}</pre>`;
      if (c.type === 'image' && typeof c.data === 'string') return html`<img key=${i} alt=${`image result ${i + 1}`} src=${`data:${c.mimeType};base64,${c.data}`} />`;
      return html`<pre key=${i}>${JSON.stringify(c, null, 2)}</pre>`;
    })}
    ${result.structuredContent !== undefined ? html`<pre>${JSON.stringify(result.structuredContent, null, 2)}</pre>` : null}
    ${content.length === 0 && result.structuredContent === undefined ? html`<pre>${JSON.stringify(result, null, 2)}</pre>` : null}
  </div>`;
}

/** One tool: its description, a form generated from its input schema, a Run button and the result. */
export function ToolCard({ server, tool, token }) {
  const [outcome, setOutcome] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const properties = tool.inputSchema?.properties ?? {};
  const required = new Set(tool.inputSchema?.required ?? []);
  const titleId = `tool-${tool.name}`;
  const run = async (e) => {
    e.preventDefault();
    let args;
    try {
      args = readArguments(e.target, properties);
    } catch (err) {
      setOutcome({ ok: false, message: err.message });
      return;
    }
    setBusy(true);
    const r = await api(`/api/servers/${encodeURIComponent(server)}/tools/${encodeURIComponent(tool.name)}`, { method: 'POST', body: args, serverToken: token });
    setBusy(false);
    setOutcome(r.ok ? { ok: true, result: r.data } : { ok: false, message: errorText(r) });
  };
  return html`<section class="card tool" aria-labelledby=${titleId}>
    <h3 id=${titleId}>${tool.name}</h3>
    ${tool.description ? html`<p>${tool.description}</p>` : null}
    <form onSubmit=${run}>
      ${Object.entries(properties).map(([name, schema]) => html`<${Field} key=${name} tool=${tool.name} name=${name} schema=${schema} required=${required.has(name)} />`)}
      <button type="submit" disabled=${busy}>${busy ? 'Running…' : 'Run'}</button>
    </form>
    <details><summary>Input schema</summary><pre>${JSON.stringify(tool.inputSchema ?? {}, null, 2)}</pre></details>
    <${Result} outcome=${outcome} />
  </section>`;
}
