import { readFileSync } from 'node:fs';

/**
 * The Node flags in a script's `#!/usr/bin/env -S node <flags>` line, so a program that starts the CLI
 * with `node <script>` (the demo, the bench) runs it as the `fluidmcp` bin does.
 */
export function binNodeFlags(script: string): string[] {
  const match = /^#!.*?\bnode\b(.*)$/.exec(readFileSync(script, 'utf8').split('\n', 1)[0] ?? '');
  return match ? match[1]!.trim().split(/\s+/).filter(Boolean) : [];
}
