import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Debian's chromium under playwright-core, headless; undefined (and a reason) when it is not installed. */
export async function launchChromium(): Promise<{ browser?: Browser; reason?: string }> {
  if (!existsSync(CHROMIUM)) return { reason: `${CHROMIUM} is not installed (.ci/run installs the chromium package)` };
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return { browser };
}
