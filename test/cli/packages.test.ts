import { expect } from 'chai';
import { join } from 'node:path';
import { compareVersions, findPackage, highestVersion, latestOfEach, listInstalled, packagesDir, resolveRunTarget } from '../../cli/packages.js';
import { errors } from '../../core/index.js';
import { suiteTempTree } from '../helpers/cli.js';

const meta = { mcpServers: { s: { command: 'node' } } };

describe('cli/packages', () => {
  const tree = suiteTempTree({
    'pk/acme/tool/1.9.0/metadata.json': meta,
    'pk/acme/tool/1.10.0/metadata.json': meta,
    'pk/acme/tool/1.10.0-rc.1/metadata.json': meta,
    'pk/acme/tool/2.0.0/README.md': 'no metadata here: not installed',
    'pk/acme/tool/.cache/metadata.json': meta,
    'pk/zed/alpha/0.0.1/metadata.json': meta,
    'pk/beta/beta/nightly/metadata.json': meta,
    'pk/beta/beta/nightly-2/metadata.json': meta,
    'work/examples/demo/metadata.json': meta,
    'work/configs/gateway.json': meta,
  });
  let root = '';
  before(() => (root = join(tree.root, 'pk')));

  it('orders versions by semver, not as strings', () => {
    expect(['1.9.0', '1.10.0', '1.2.0', '1.10.0-rc.1', '0.9.9'].sort(compareVersions)).to.deep.equal(['0.9.9', '1.2.0', '1.9.0', '1.10.0-rc.1', '1.10.0']);
    expect(highestVersion(['1.9.0', '1.10.0'])).to.equal('1.10.0');
    expect(highestVersion(['10.0.0', '9.0.0', '2.0.0'])).to.equal('10.0.0');
    expect(highestVersion([])).to.equal(undefined);
  });

  it('ranks semver versions above other names, which sort naturally among themselves', () => {
    expect(highestVersion(['latest-build', '0.0.1'])).to.equal('0.0.1');
    expect(highestVersion(['build-9', 'build-10'])).to.equal('build-10');
  });

  it('lists installed versions that have a metadata.json, sorted', () => {
    expect(listInstalled(root).map((p) => p.id)).to.deep.equal([
      'acme/tool@1.9.0',
      'acme/tool@1.10.0-rc.1',
      'acme/tool@1.10.0',
      'beta/beta@nightly',
      'beta/beta@nightly-2',
      'zed/alpha@0.0.1',
    ]);
    expect(listInstalled(join(tree.root, 'nothing-here'))).to.deep.equal([]);
  });

  it('keeps the highest version of each package', () => {
    expect(latestOfEach(listInstalled(root)).map((p) => p.id)).to.deep.equal(['acme/tool@1.10.0', 'beta/beta@nightly-2', 'zed/alpha@0.0.1']);
  });

  it('finds author/package, author/package@version, @latest and @range', () => {
    expect(findPackage('acme/tool', root).id).to.equal('acme/tool@1.10.0');
    expect(findPackage('acme/tool@latest', root).id).to.equal('acme/tool@1.10.0');
    expect(findPackage('acme/tool@1.9.0', root).metadata).to.equal(join(root, 'acme', 'tool', '1.9.0', 'metadata.json'));
    expect(findPackage('acme/tool@1.10.0-rc.1', root).id).to.equal('acme/tool@1.10.0-rc.1');
    expect(findPackage('acme/tool@^1.9', root).id).to.equal('acme/tool@1.10.0');
    expect(findPackage('acme/tool@<1.10', root).id).to.equal('acme/tool@1.9.0');
    expect(findPackage('beta/beta@nightly', root).id).to.equal('beta/beta@nightly');
  });

  it('says which versions exist when the asked one does not', () => {
    let caught: unknown;
    try {
      findPackage('acme/tool@2.0.0', root);
    } catch (err) {
      caught = err;
    }
    expect(errors.FMCP_ERR_PACKAGE_NOT_FOUND.is(caught)).to.equal(true);
    expect((caught as Error).message).to.equal(
      `Package acme/tool@2.0.0 is not installed in ${root}: install it there or set FMCP_PACKAGES_DIR (see \`fluidmcp list\`). Installed versions of acme/tool: 1.9.0, 1.10.0-rc.1, 1.10.0`,
    );
  });

  it('resolves "all", paths, folders and packages to the files to read', () => {
    const cwd = join(tree.root, 'work');
    expect(resolveRunTarget('all', root, cwd).map((s) => s.pkg?.id)).to.deep.equal(['acme/tool@1.10.0', 'beta/beta@nightly-2', 'zed/alpha@0.0.1']);
    expect(resolveRunTarget('acme/tool@1.9.0', root, cwd)[0]).to.deep.include({ label: 'metadata.json', file: join(root, 'acme/tool/1.9.0/metadata.json') });
    expect(resolveRunTarget('configs/gateway.json', root, cwd)).to.deep.equal([{ file: join(cwd, 'configs/gateway.json'), label: 'configs/gateway.json' }]);
    expect(resolveRunTarget('./examples/demo/metadata.json', root, cwd)).to.deep.equal([{ file: join(cwd, 'examples/demo/metadata.json'), label: 'metadata.json' }]);
    // reads like author/package, but is a folder holding a metadata.json and no such package is installed
    expect(resolveRunTarget('examples/demo', root, cwd)).to.deep.equal([{ file: join(cwd, 'examples/demo/metadata.json'), label: 'metadata.json' }]);
    // a path to a file that does not exist is still a path: reading it names the file
    expect(resolveRunTarget('missing/config.json', root, cwd)[0]!.file).to.equal(join(cwd, 'missing/config.json'));
  });

  it('refuses a spec that is neither a package nor a path', () => {
    let caught: unknown;
    try {
      resolveRunTarget('tool', root, tree.root);
    } catch (err) {
      caught = err;
    }
    expect(errors.FMCP_ERR_PACKAGE_SPEC.is(caught)).to.equal(true);
  });

  it('finds the packages folder from the option, then $FMCP_PACKAGES_DIR, then ./.fmcp-packages', () => {
    expect(packagesDir('/opt/pk', { FMCP_PACKAGES_DIR: '/env/pk' })).to.equal('/opt/pk');
    expect(packagesDir(undefined, { FMCP_PACKAGES_DIR: '/env/pk' })).to.equal('/env/pk');
    expect(packagesDir(undefined, {})).to.equal(join(process.cwd(), '.fmcp-packages'));
  });
});
