import { expect } from 'chai';
import { definePlugin, type GatewayEvents, type JsonObject, type PendingStateStore } from '../../../index.js';
import type { TestGateway } from '../../helpers/gateway.js';
import { errorCode, errorMessage, get, loginUrl, mailboxEntry, pkceAuth, startPkceGateway, storePlugin } from './pkce-gateway.js';
import { startOidcServer, type OidcServer } from '../../helpers/oidc.js';

/** A store that works until told to fail, and then throws what a third-party store might: a plain Error. */
class BreakableStore implements PendingStateStore {
  broken = false;
  private readonly items = new Map<string, JsonObject>();
  async put(key: string, value: JsonObject): Promise<void> {
    if (this.broken) throw new Error('connection reset by peer');
    this.items.set(key, value);
  }
  async take(key: string): Promise<JsonObject | undefined> {
    if (this.broken) throw new Error('connection reset by peer');
    const value = this.items.get(key);
    this.items.delete(key);
    return value;
  }
  async size(): Promise<number> {
    return this.items.size;
  }
}

describe('auth-oauth2-pkce: a failing pending-state store, and login outcomes', function () {
  this.timeout(20_000);
  let oidc: OidcServer;
  let gw: TestGateway;
  const store = new BreakableStore();
  const outcomes: GatewayEvents['login.outcome'][] = [];

  before(async () => {
    oidc = await startOidcServer();
    gw = await startPkceGateway(oidc, { mailbox: mailboxEntry(pkceAuth(oidc)) }, {
      extraPlugins: [
        storePlugin(store),
        definePlugin({ name: 'outcome-recorder', register: (api) => void api.events.on('login.outcome', (e) => outcomes.push(e)) }),
      ],
    });
  });
  afterEach(() => {
    store.broken = false;
  });
  after(async () => {
    await gw?.stop();
    await oidc?.close();
  });

  it('answers a login it cannot record with a 503 FMCP_ERR_STATE_STORE that says what to do', async () => {
    store.broken = true;
    const res = await get(loginUrl(gw, 'mailbox'));
    expect(res.status).to.equal(503);
    expect(errorCode(res.body)).to.equal('FMCP_ERR_STATE_STORE');
    expect(errorMessage(res.body)).to.equal('The pending-state store is unavailable: the login to "mailbox" cannot start (connection reset by peer); try again in a moment');
  });

  it('answers a callback it cannot check with a 503, and reports the outcome store_unavailable', async () => {
    const started = await get(loginUrl(gw, 'mailbox'));
    const state = new URL(started.headers.get('location')!).searchParams.get('state')!;
    store.broken = true;
    outcomes.length = 0;
    const res = await get(gw.url(`/mailbox/auth/callback?state=${state}&code=abc`));
    expect(res.status).to.equal(503);
    expect(errorCode(res.body)).to.equal('FMCP_ERR_STATE_STORE');
    expect(errorMessage(res.body)).to.equal(
      `The pending-state store is unavailable: the login to "mailbox" cannot finish (connection reset by peer); retry this callback in a moment, or start a new login at ${loginUrl(gw, 'mailbox')}`,
    );
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(outcomes).to.deep.equal([{ server: 'mailbox', outcome: 'store_unavailable' }]);
    // the state was never taken: once the store is back, the same callback goes on to the provider
    store.broken = false;
    const again = await get(gw.url(`/mailbox/auth/callback?state=${state}&code=abc`));
    // the provider refuses the made-up code: a provider error, not an unknown state
    expect(again.status).to.equal(400);
    expect(errorMessage(again.body)).not.to.contain('Invalid or expired state');
    expect(outcomes.map((o) => o.outcome)).to.deep.equal(['store_unavailable', 'provider_error']);
  });

  it('reports bad_state, provider_error and bad_request outcomes', async () => {
    outcomes.length = 0;
    await get(gw.url('/mailbox/auth/callback?state=never-issued&code=x'));
    let state = new URL((await get(loginUrl(gw, 'mailbox'))).headers.get('location')!).searchParams.get('state')!;
    await get(gw.url(`/mailbox/auth/callback?state=${state}&error=access_denied`));
    state = new URL((await get(loginUrl(gw, 'mailbox'))).headers.get('location')!).searchParams.get('state')!;
    await get(gw.url(`/mailbox/auth/callback?state=${state}`));
    expect(outcomes.map((o) => o.outcome)).to.deep.equal(['bad_state', 'provider_error', 'bad_request']);
  });
});
