import { expect } from 'chai';
import { errors, FluidError } from '../../core/index.js';
import { sizeText } from '../../core/errors.js';

describe('core/errors', () => {
  const entries = Object.entries(errors);

  it('has a key equal to its code for every error', () => {
    for (const [key, factory] of entries) expect(factory.code, key).to.equal(key);
  });

  it('has unique codes, all prefixed FMCP_ERR_', () => {
    const codes = entries.map(([, f]) => f.code);
    expect(new Set(codes).size).to.equal(codes.length);
    for (const code of codes) expect(code).to.match(/^FMCP_ERR_[A-Z_]+$/);
  });

  it('maps every error to an HTTP error status', () => {
    for (const [key, factory] of entries) {
      expect(factory.statusCode, key).to.be.within(400, 599);
      expect(factory().statusCode, key).to.equal(factory.statusCode);
    }
  });

  it('makes FluidErrors that carry code, status and a formatted message', () => {
    const err = errors.FMCP_ERR_LISTEN('127.0.0.1', 8099, 'the port is already in use');
    expect(err).to.be.instanceOf(FluidError).and.instanceOf(Error);
    expect(err).to.include({ name: 'FluidError', code: 'FMCP_ERR_LISTEN', statusCode: 500 });
    expect(err.message).to.equal('Cannot listen on 127.0.0.1:8099: the port is already in use');
  });

  it('uses an Error argument\'s message and keeps it as the cause', () => {
    const cause = new Error('ENOENT');
    const err = errors.FMCP_ERR_PLUGIN_LOAD('./x.js', cause);
    expect(err.message).to.equal('Cannot load plugin "./x.js": ENOENT');
    expect(err.cause).to.equal(cause);
  });

  it('tells its own errors apart with is()', () => {
    expect(errors.FMCP_ERR_NOT_FOUND.is(errors.FMCP_ERR_NOT_FOUND('GET', '/'))).to.equal(true);
    expect(errors.FMCP_ERR_NOT_FOUND.is(errors.FMCP_ERR_FORBIDDEN('no'))).to.equal(false);
    expect(errors.FMCP_ERR_NOT_FOUND.is(new Error('FMCP_ERR_NOT_FOUND'))).to.equal(false);
  });

  it('writes a size limit in KiB or MiB with the exact bytes beside it', () => {
    expect([1000, 1024, 1536, 64 * 1024, 4 * 1024 * 1024, 16384].map(sizeText)).to.deep.equal([
      '1000 bytes',
      '1 KiB (1024 bytes)',
      '1.5 KiB (1536 bytes)',
      '64 KiB (65536 bytes)',
      '4 MiB (4194304 bytes)',
      '16 KiB (16384 bytes)',
    ]);
  });
});
