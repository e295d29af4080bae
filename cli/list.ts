import { complain, EXIT_OK, say } from './output.js';
import { listInstalled, packagesDir } from './packages.js';

/** `fluidmcp list`: every installed package version, one `author/pkg@version` a line, sorted. */
export function listCommand(dir?: string): number {
  const root = packagesDir(dir);
  const installed = listInstalled(root);
  if (installed.length === 0) complain(`no packages installed in ${root} (lay them out as author/package/version/metadata.json, or set FMCP_PACKAGES_DIR)`);
  for (const pkg of installed) say(pkg.id);
  return EXIT_OK;
}
