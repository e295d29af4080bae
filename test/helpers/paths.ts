import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The repository root, from the compiled test files in dist/test/helpers. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const fixture = (name: string): string => join(repoRoot, 'test', 'fixtures', name);
export const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
export const everythingServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
