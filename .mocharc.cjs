'use strict';
module.exports = {
  spec: ['dist/test/**/*.test.js'],
  require: ['dist/test/setup.js'],
  reporter: './test/reporter.cjs',
  timeout: 30000,
  exit: true,
};
