import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { FluidError } from '../../../index.js';
import { TokenSeal } from '../../../plugins/auth-oauth2-pkce/index.js';
import { epochIn } from '../../../plugins/auth-oauth2-pkce/token-seal.js';

const key = (): string => randomBytes(32).toString('base64url');

describe('auth-oauth2-pkce: sealed tokens (JWE dir/A256GCM through jose)', () => {
  const aud = 'http://localhost:1/files/mcp';

  it('seals and opens; the document is not readable without the key', async () => {
    const seal = new TokenSeal([key()]);
    const token = await seal.seal('access', { aud, exp: epochIn(60), ptk: 'provider-secret-token' });
    expect(token.split('.')).to.have.length(5);
    expect(Buffer.from(token.replace(/\./g, ''), 'base64url').toString('latin1')).to.not.include('provider-secret-token');
    const opened = await seal.open('access', token, aud);
    expect(opened.ok && opened.claims.ptk).to.equal('provider-secret-token');
    expect(TokenSeal.isSealed(token, 'access')).to.equal(true);
    expect(TokenSeal.isSealed(token, 'refresh')).to.equal(false);
    expect(TokenSeal.isSealed('ya29.a0AfH6SM', 'access')).to.equal(false);
  });

  it('names why it refuses: another audience, another kind, expired, altered, an unknown key', async () => {
    const k = key();
    const seal = new TokenSeal([k]);
    const token = await seal.seal('access', { aud, exp: epochIn(60), ptk: 't' });
    expect(await seal.open('access', token, 'http://localhost:1/notes/mcp')).to.deep.equal({ ok: false, reason: 'wrong_audience' });
    expect(await seal.open('refresh', token, aud)).to.deep.equal({ ok: false, reason: 'wrong_kind' });
    const expired = await seal.seal('access', { aud, exp: epochIn(-1), ptk: 't' });
    expect(await seal.open('access', expired, aud)).to.deep.equal({ ok: false, reason: 'expired' });
    const parts = token.split('.');
    parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
    expect(await seal.open('access', parts.join('.'), aud)).to.deep.equal({ ok: false, reason: 'tampered' });
    expect(await new TokenSeal([key()]).open('access', token, aud)).to.deep.equal({ ok: false, reason: 'unknown_key' });
    expect(await seal.open('access', 'not a token', aud)).to.deep.equal({ ok: false, reason: 'malformed' });
  });

  it('rotates: a new key in front seals, the old one still opens', async () => {
    const oldKey = key();
    const before = await new TokenSeal([oldKey]).seal('refresh', { aud, prt: 'r' });
    const rotated = new TokenSeal([key(), oldKey]);
    expect((await rotated.open('refresh', before, aud)).ok).to.equal(true);
    const after = await rotated.seal('refresh', { aud, prt: 'r' });
    expect((await new TokenSeal([oldKey]).open('refresh', after, aud)).ok).to.equal(false);
  });

  it('takes hex keys, lists from FMCP_TOKEN_KEYS, and refuses a short key with a way to make one', () => {
    expect(new TokenSeal([randomBytes(32).toString('hex')]).ephemeral).to.equal(false);
    expect(new TokenSeal([]).ephemeral).to.equal(true);
    expect(TokenSeal.parseList(' a, b  c,')).to.deep.equal(['a', 'b', 'c']);
    let error: unknown;
    try {
      new TokenSeal(['too-short']);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(FluidError);
    expect((error as FluidError).code).to.equal('FMCP_ERR_CONFIG_INVALID');
    expect((error as FluidError).message).to.include('key #1').and.include('openssl rand -hex 32');
  });
});
