import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly headers: Record<string, string>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** the page's own files: beside this module in the source tree, `../../../plugins/console/ui` from dist */
const UI_DIRS = [join(here, 'ui'), resolve(here, '..', '..', '..', 'plugins', 'console', 'ui')];
const require = createRequire(import.meta.url);

/** A file of an npm package, found from the file its main entry resolves to (no package.json export needed). */
function vendorFile(pkg: string, entry: string, file: string): string {
  return join(dirname(require.resolve(entry)), file);
}

const VENDOR: Record<string, { file: () => string; type: string }> = {
  '/console/vendor/preact.js': { file: () => vendorFile('preact', 'preact', 'preact.module.js'), type: 'text/javascript' },
  '/console/vendor/preact-hooks.js': { file: () => vendorFile('preact', 'preact/hooks', 'hooks.module.js'), type: 'text/javascript' },
  '/console/vendor/htm.js': { file: () => vendorFile('htm', 'htm', 'htm.module.js'), type: 'text/javascript' },
  '/console/vendor/uplot.js': { file: () => vendorFile('uplot', 'uplot', 'uPlot.esm.js'), type: 'text/javascript' },
  '/console/vendor/uplot.css': { file: () => vendorFile('uplot', 'uplot', 'uPlot.min.css'), type: 'text/css' },
};

const OWN: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.js': { file: 'app.js', type: 'text/javascript' },
  '/console/views.js': { file: 'views.js', type: 'text/javascript' },
  '/console/tool-form.js': { file: 'tool-form.js', type: 'text/javascript' },
  '/console/style.css': { file: 'style.css', type: 'text/css' },
};

const IMPORT_MAP = JSON.stringify({
  imports: { preact: '/console/vendor/preact.js', 'preact/hooks': '/console/vendor/preact-hooks.js', htm: '/console/vendor/htm.js', uplot: '/console/vendor/uplot.js' },
});

function uiFile(name: string): Buffer {
  for (const dir of UI_DIRS) {
    try {
      return readFileSync(join(dir, name));
    } catch {
      // try the next folder
    }
  }
  throw new Error(`the console file ${name} is missing from ${UI_DIRS.join(' and ')}: reinstall fluidmcp`);
}

/**
 * Every file the console serves, read once at start. The page runs under a strict CSP: scripts from the
 * gateway only, plus the import map by its hash; no connection anywhere but the gateway.
 */
export function loadAssets(): Map<string, Asset> {
  const mapTag = `<script type="importmap">${IMPORT_MAP}</script>`;
  const mapHash = createHash('sha256').update(IMPORT_MAP).digest('base64');
  const csp = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${mapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  const common = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache' };
  const assets = new Map<string, Asset>();
  for (const [path, { file, type }] of Object.entries(OWN)) {
    let body = uiFile(file);
    const headers: Record<string, string> = { ...common };
    if (file === 'index.html') {
      body = Buffer.from(body.toString('utf8').replace('<!--importmap-->', mapTag));
      Object.assign(headers, { 'content-security-policy': csp, 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
    }
    assets.set(path, { type, body, headers });
  }
  for (const [path, { file, type }] of Object.entries(VENDOR)) assets.set(path, { type, body: readFileSync(file()), headers: common });
  return assets;
}
