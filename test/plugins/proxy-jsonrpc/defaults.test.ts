import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROXY_DEFAULTS } from '../../../plugins/proxy-jsonrpc/defaults.js';
import { repoRoot } from '../../helpers/paths.js';

const read = (path: string): string => readFileSync(join(repoRoot, path), 'utf8');
/** Every number `pattern` (one capture group) finds in `text`. */
const all = (text: string, pattern: RegExp): number[] => [...text.matchAll(pattern)].map((m) => Number(m[1]));

describe('proxy-jsonrpc defaults: one place, stated as they are', () => {
  it('has the defaults README promises: 32 processes per server, 10 idle minutes, 60 s call timeout', () => {
    expect(PROXY_DEFAULTS).to.deep.include({ callTimeoutMs: 60_000, maxInstances: 32, instanceIdleMs: 600_000 });
  });

  it('has the session limits README states: 10000 sessions, idle 5 minutes before one may be ended, no per-address limit', () => {
    expect(PROXY_DEFAULTS).to.deep.include({ maxSessions: 10_000, sessionEvictIdleMs: 300_000, maxSessionsPerAddress: 0 });
    const readme = read('README.md');
    expect(all(readme, /at most (\d+) sessions at once/g)).to.deep.equal([PROXY_DEFAULTS.maxSessions]);
    expect(all(readme, /idle for (\d+) minutes without an open stream/g)).to.deep.equal([PROXY_DEFAULTS.sessionEvictIdleMs / 60_000]);
    const source = read('plugins/proxy-jsonrpc/index.ts');
    expect(source).to.include('maxSessions: options.maxSessions ?? PROXY_DEFAULTS.maxSessions,');
    expect(source).to.include('evictIdleMs: options.sessionEvictIdleMs ?? PROXY_DEFAULTS.sessionEvictIdleMs,');
    expect(source).to.include('maxSessionsPerAddress: options.maxSessionsPerAddress ?? PROXY_DEFAULTS.maxSessionsPerAddress,');
  });

  it('has the process limit README states: a process idle 60 s may make room at maxInstances', () => {
    expect(PROXY_DEFAULTS.instanceEvictIdleMs).to.equal(60_000);
    expect(all(read('README.md'), /`instanceEvictIdleMs` \(default (\d+) s\)/g)).to.deep.equal([PROXY_DEFAULTS.instanceEvictIdleMs / 1000]);
    expect(read('plugins/proxy-jsonrpc/index.ts')).to.include('instanceEvictIdleMs: options.instanceEvictIdleMs ?? PROXY_DEFAULTS.instanceEvictIdleMs,');
  });

  it('README.md states exactly PROXY_DEFAULTS', () => {
    const readme = read('README.md');
    expect(all(readme, /(\d+) processes per server/g)).to.deep.equal([PROXY_DEFAULTS.maxInstances]);
    expect(all(readme, /(\d+) idle minutes/g)).to.deep.equal([PROXY_DEFAULTS.instanceIdleMs / 60_000]);
    expect(all(readme, /does not answer ends\s+after (\d+) s/g)).to.deep.equal([PROXY_DEFAULTS.callTimeoutMs / 1000]);
  });

  it('docs/deploy.md states exactly PROXY_DEFAULTS', () => {
    const deploy = read('docs/deploy.md');
    expect(all(deploy, /capped \((\d+) per package\)/g)).to.deep.equal([PROXY_DEFAULTS.maxInstances]);
    expect(all(deploy, /(\d+) idle minutes/g)).to.deep.equal([PROXY_DEFAULTS.instanceIdleMs / 60_000]);
  });

  it('the plugin takes them from PROXY_DEFAULTS, and its option docs say the same numbers', () => {
    const source = read('plugins/proxy-jsonrpc/index.ts');
    for (const name of ['callTimeoutMs', 'maxInstances', 'instanceIdleMs'] as const) {
      expect(source, name).to.include(`${name}: options.${name} ?? PROXY_DEFAULTS.${name},`);
    }
    const doc = (option: string): string => source.match(new RegExp(`/\\*\\* ([^*]+) \\*/\\s+${option}\\?:`))![1]!;
    expect(doc('callTimeoutMs')).to.include(`(default ${PROXY_DEFAULTS.callTimeoutMs / 1000} s)`);
    expect(doc('maxInstances')).to.include(`(default ${PROXY_DEFAULTS.maxInstances})`);
    expect(doc('instanceIdleMs')).to.include(`(default ${PROXY_DEFAULTS.instanceIdleMs / 60_000} min)`);
  });
});
