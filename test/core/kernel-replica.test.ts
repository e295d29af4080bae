import { expect } from 'chai';
import { pino } from 'pino';
import { createKernel, errors } from '../../core/index.js';

describe('core: kernel replicaId', () => {
  it('keeps a valid replica id in the options plugins read', () => {
    expect(createKernel({ logger: pino({ level: 'silent' }), replicaId: 'gw-2_east' }).options.replicaId).to.equal('gw-2_east');
  });

  for (const bad of ['', 'a.b', 'with space', 'x'.repeat(33), 'é']) {
    it(`refuses "${bad.length > 10 ? `${bad.slice(0, 5)}…` : bad}": it becomes the start of session ids`, () => {
      let thrown: unknown;
      try {
        createKernel({ logger: pino({ level: 'silent' }), replicaId: bad });
      } catch (err) {
        thrown = err;
      }
      expect(errors.FMCP_ERR_CONFIG_INVALID.is(thrown)).to.equal(true);
      expect((thrown as Error).message).to.contain('replicaId: expected 1-32 letters, digits, "-" or "_"');
    });
  }
});
