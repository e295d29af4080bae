'use strict';
// Mocha's spec output, then "N skipped", then the plain closing line CI reads: "N passed, N failed".
// Every skipped test is listed with its reason (the `skipReason` a helper set on the test or one of its
// suites, see test/helpers/services.ts). On CI (`CI` set, or FMCP_TEST_STRICT=1, as .ci/run sets) a
// skipped test counts as a failure too: CI installs everything the tests need, so a skip there means a
// test that did not run.
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END, EVENT_TEST_PENDING } = Mocha.Runner.constants;

const strict = (() => {
  const on = (v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  return on(process.env.FMCP_TEST_STRICT) || on(process.env.CI);
})();

function reasonOf(test) {
  for (let node = test; node; node = node.parent) if (node.skipReason) return node.skipReason;
  return 'no reason given (this.skip() or it.skip without a reason)';
}

class PlainCountReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    const skipped = [];
    runner.on(EVENT_TEST_PENDING, (test) => skipped.push(`  - ${test.fullTitle()}: ${reasonOf(test)}`));
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || {};
      if (skipped.length > 0) {
        process.stdout.write(`\nskipped:\n${skipped.join('\n')}\n`);
        if (strict) {
          // mocha's exit code is runner.failures, read after this listener (registered before runner.run)
          runner.failures += skipped.length;
          process.stdout.write(`CI (CI or FMCP_TEST_STRICT set): the ${skipped.length} skipped test(s) count as failed\n`);
        }
      }
      const failed = (s.failures || 0) + (strict ? skipped.length : 0);
      process.stdout.write(`\n${s.pending || 0} skipped\n${s.passes || 0} passed, ${failed} failed\n`);
    });
  }
}
module.exports = PlainCountReporter;
module.exports.strict = strict;
