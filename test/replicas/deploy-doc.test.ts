import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';
import { nginxConfig } from '../helpers/services.js';

describe('replicas: docs/deploy.md', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'deploy.md'), 'utf8');

  it('shows the nginx configuration the replica tests run, for its documented ports and folder', () => {
    const shown = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(shown, 'an nginx block in docs/deploy.md').to.be.a('string');
    expect(shown).to.equal(nginxConfig('/var/lib/fluidmcp/nginx', 8080, [{ id: 'gw1', port: 8101 }, { id: 'gw2', port: 8102 }]));
  });

  it('documents every option the replicas are started with', () => {
    for (const option of ['--state-store', '--replica-id', '--metrics', '--public-url', '--allowed-host', '--replica-url', '"stateStore"']) expect(doc).to.contain(option);
  });
});
