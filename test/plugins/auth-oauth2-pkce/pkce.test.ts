import { expect } from 'chai';
import { challengeS256, createState, createVerifier, tokenKey, VERIFIER_PATTERN } from '../../../plugins/auth-oauth2-pkce/index.js';

describe('auth-oauth2-pkce: PKCE values', () => {
  it('computes the S256 challenge of RFC 7636 appendix B', () => {
    expect(challengeS256('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).to.equal('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('makes verifiers of 43 unreserved characters (32 random bytes), different each time', () => {
    const verifiers = new Set(Array.from({ length: 200 }, () => createVerifier()));
    expect(verifiers.size).to.equal(200);
    for (const v of verifiers) {
      expect(v).to.match(VERIFIER_PATTERN);
      expect(v).to.have.length(43);
    }
  });

  it('makes states of 256 random bits, base64url, different each time', () => {
    const states = new Set(Array.from({ length: 200 }, () => createState()));
    expect(states.size).to.equal(200);
    for (const s of states) expect(s).to.match(/^[A-Za-z0-9_-]{43}$/);
  });

  it('keys a token by its SHA-256, which does not contain the token', () => {
    const key = tokenKey('ya29.secret-token');
    expect(key).to.match(/^[0-9a-f]{64}$/);
    expect(key).to.equal(tokenKey('ya29.secret-token'));
    expect(key).to.not.equal(tokenKey('ya29.secret-tokem'));
  });
});
