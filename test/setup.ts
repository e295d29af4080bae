// reflect-metadata must load before tsyringe in every entry point
import 'reflect-metadata';
import { mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leakedProcesses, runMarker, type LeakedProcess } from './helpers/leaks.js';

/*
 * Root hooks: the run fails when a test file leaves a child process or a temporary folder behind.
 *
 * Temporary folders: this process sets TMPDIR to a folder of its own before any test file loads, so
 * every `os.tmpdir()` of the tests (and of the gateway CLI processes they start, which inherit it) lands
 * there; nobody else writes into it. After each top-level suite anything new in it is a leak, and at the
 * end of the run it must be empty (that also catches folders made in `describe` bodies under --grep).
 *
 * Child processes: see test/helpers/leaks.ts (marker in the environment, parent chain, or a command line
 * inside this checkout started during the run). Leaked processes are listed, then SIGKILLed so the next
 * suite starts clean.
 */

const runTmp = mkdtempSync(join(tmpdir(), `fmcp-test-run-${process.pid}-`));
process.env.TMPDIR = runTmp;
process.env.FMCP_TEST_RUN = runMarker;
// a run that ends without the root after-all hook (a bail, an abort): the folder goes if nothing is left in it
process.on('exit', () => {
  try {
    rmdirSync(runTmp);
  } catch {
    // removed already, or something was left: the hook reported it
  }
});

type Hook = (this: Mocha.Context) => Promise<void> | void;
interface SuiteWithHooks {
  suites: SuiteWithHooks[];
  afterAll(title: string, fn: Hook): void;
}

const entries = (): string[] => {
  try {
    return readdirSync(runTmp);
  } catch {
    return [];
  }
};

/** Waits up to `ms` for the leaked set to empty (a stopped server may take a moment to exit). */
async function settledLeaks(ms: number): Promise<LeakedProcess[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const leaked = leakedProcesses();
    if (leaked.length === 0 || Date.now() > deadline) return leaked;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function killAll(leaked: LeakedProcess[]): void {
  for (const p of leaked) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

function describeLeaks(where: string, leaked: LeakedProcess[], folders: string[]): string {
  const lines = [`${where} left resources behind (each test must stop what it starts and remove what it writes):`];
  for (const p of leaked) lines.push(`  process ${p.pid} (${p.why}): ${p.cmdline.slice(0, 300)}`);
  for (const f of folders) lines.push(`  temporary ${join(runTmp, f)}`);
  return lines.join('\n');
}

let known = new Set<string>();

async function checkAfter(where: string, mustBeEmpty: boolean): Promise<void> {
  const leaked = await settledLeaks(5_000);
  const now = entries();
  const folders = mustBeEmpty ? now : now.filter((e) => !known.has(e));
  killAll(leaked);
  for (const f of folders) rmSync(join(runTmp, f), { recursive: true, force: true });
  known = new Set(entries());
  if (leaked.length > 0 || folders.length > 0) throw new Error(describeLeaks(where, leaked, folders));
}

export const mochaHooks = {
  beforeAll(this: Mocha.Context): void {
    // folders made while the test files loaded (describe bodies) are checked at the end of the run
    known = new Set(entries());
    const root = this.test?.parent as unknown as SuiteWithHooks | undefined;
    for (const suite of root?.suites ?? []) {
      // appended after the suite's own after-all hooks, so it sees what they did not clean up
      suite.afterAll('no leaked process or temporary folder', async function (this: Mocha.Context) {
        this.timeout(15_000);
        await checkAfter(`"${this.test?.parent?.fullTitle()}"`, false);
      });
    }
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(15_000);
    try {
      await checkAfter('the test run', true);
    } finally {
      rmSync(runTmp, { recursive: true, force: true });
    }
  },
};
