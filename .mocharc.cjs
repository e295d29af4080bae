'use strict';
module.exports = {
  spec: ['dist/test/**/*.test.js'],
  require: ['dist/test/setup.js'],
  reporter: './test/reporter.cjs',
  timeout: 30000,
  // no `exit: true`: the suite ends by itself, and a leaked handle shows as a run that does not end
};
