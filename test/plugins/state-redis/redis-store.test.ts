import { expect } from 'chai';
import { until } from '../../helpers/request.js';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { createKernel, errors, FluidError, PENDING_STATE, stateRedis, type PendingStateStore } from '../../../index.js';
import { RedisStateStore } from '../../../plugins/state-redis/index.js';
import { closedPort } from '../auth-oauth2-pkce/pkce-gateway.js';
import { skipWithout, startRedis, type RedisServer } from '../../helpers/services.js';

const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';

/** A logger that keeps its lines, to check what was (not) logged. */
function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) }), lines };
}

function store(url: string, log: Logger, extra: Partial<ConstructorParameters<typeof RedisStateStore>[0]> = {}): RedisStateStore {
  return new RedisStateStore({ url, prefix: 'fmcp-test:', connectTimeoutMs: 2000, commandTimeoutMs: 500, log, ...extra });
}

async function rejection(promise: Promise<unknown>): Promise<FluidError> {
  try {
    await promise;
  } catch (err) {
    return err as FluidError;
  }
  throw new Error('expected a rejection');
}

describe('state-redis: pending state in a real redis-server', function () {
  let redis: RedisServer;
  let raw: Redis;
  const open: RedisStateStore[] = [];

  before(async function () {
    skipWithout(this, 'redis-server');
    redis = await startRedis();
    raw = new Redis(redis.url(5), { lazyConnect: true });
    await raw.connect();
  });

  after(async () => {
    await Promise.all(open.map((s) => s.close()));
    raw?.disconnect();
    await redis?.stop();
  });

  async function connected(db = 5, extra: Partial<ConstructorParameters<typeof RedisStateStore>[0]> = {}, log = pino({ level: 'silent' })): Promise<RedisStateStore> {
    const s = store(redis.url(db), log, extra);
    open.push(s);
    await s.connect();
    return s;
  }

  it('writes each entry under its prefix with its expiry, returns it once, and never logs the value', async () => {
    const { log, lines } = recordingLogger();
    const s = await connected(5, {}, log);
    await s.put('state-1', { package: 'mail', verifier: VERIFIER }, 60_000);
    expect(await raw.pttl('fmcp-test:pending:state-1')).to.be.within(59_000, 60_000);
    expect(JSON.parse((await raw.get('fmcp-test:pending:state-1'))!)).to.deep.equal({ package: 'mail', verifier: VERIFIER });
    expect(await s.size()).to.equal(1);
    expect(await s.take('state-1')).to.deep.equal({ package: 'mail', verifier: VERIFIER });
    expect(await s.take('state-1')).to.equal(undefined);
    expect(await raw.exists('fmcp-test:pending:state-1')).to.equal(0);
    expect(await s.size()).to.equal(0);
    expect(lines.join('')).not.to.contain(VERIFIER);
    expect(lines.join('')).to.contain('pending logins are kept in Redis');
  });

  it('lets an entry expire: take gives nothing and size no longer counts it', async () => {
    const s = await connected();
    await s.put('short', { package: 'mail' }, 80);
    await s.put('long', { package: 'mail' }, 60_000);
    try {
      expect(await s.size()).to.equal(2);
      // Redis expires it after 80 ms (counted from when Redis got it, a little after the index's own clock
      // started): wait for Redis to drop the key, not for a guess at it
      await until(async () => ((await raw.exists('fmcp-test:pending:short')) === 0 ? true : undefined), 5000, 'the short entry to expire');
      expect(await s.take('short')).to.equal(undefined);
      expect(await s.size()).to.equal(1);
    } finally {
      await s.take('long');
    }
  });

  it('hands each state to exactly one of two stores taking it at the same moment (two replicas racing)', async () => {
    const a = await connected();
    const b = await connected();
    const keys = Array.from({ length: 50 }, (_, i) => `race-${i}`);
    await Promise.all(keys.map((k) => a.put(k, { package: 'mail', n: k }, 60_000)));
    const results = await Promise.all(keys.flatMap((k) => [a.take(k), b.take(k)]));
    for (let i = 0; i < keys.length; i++) {
      const won = [results[2 * i], results[2 * i + 1]].filter((r) => r !== undefined);
      expect(won, keys[i]).to.deep.equal([{ package: 'mail', n: keys[i] }]);
    }
    expect(await a.size()).to.equal(0);
  });

  it('keeps the databases of the URL apart', async () => {
    const db5 = await connected(5);
    const db6 = await connected(6);
    await db5.put('apart', { package: 'mail' }, 60_000);
    expect(await db6.take('apart')).to.equal(undefined);
    expect(await db5.take('apart')).to.deep.equal({ package: 'mail' });
  });

  it('treats an entry it did not write as absent, and a state too long to be one as unknown without asking Redis', async () => {
    const { log, lines } = recordingLogger();
    const s = await connected(5, {}, log);
    await raw.set('fmcp-test:pending:foreign', 'not json {');
    expect(await s.take('foreign')).to.equal(undefined);
    expect(lines.join('')).to.contain('not a JSON object');
    expect(await s.take('x'.repeat(10_000))).to.equal(undefined);
  });

  it('fails a command on a Redis that stopped answering within commandTimeout, with a 503 error naming it, and works again once it answers', async () => {
    const s = await connected(5, { commandTimeoutMs: 300 });
    await s.put('frozen', { package: 'mail' }, 60_000);
    redis.pause();
    try {
      const started = Date.now();
      const err = await rejection(s.take('frozen'));
      expect(Date.now() - started).to.be.below(3000);
      expect(errors.FMCP_ERR_STATE_STORE.is(err)).to.equal(true);
      expect(err.statusCode).to.equal(503);
      expect(err.message).to.equal(`The pending-state store is unavailable: Redis at ${redis.url(5)} could not take a pending login: no answer within 300 ms`);
    } finally {
      redis.resume();
    }
    // the GETDEL that timed out was already on the connection: Redis runs it when it wakes up, before the
    // next command on that connection, so the entry is gone and never handed out twice
    expect(await s.take('frozen')).to.equal(undefined);
    await s.put('again', { package: 'mail' }, 60_000);
    expect(await s.take('again')).to.deep.equal({ package: 'mail' });
  });

  it('fails at once with a 503 error while Redis is gone, logs the outage once without values, and recovers when it is back', async () => {
    const own = await startRedis();
    let back: RedisServer | undefined;
    const { log, lines } = recordingLogger();
    const s = store(own.url(0), log);
    try {
      await s.connect();
      await s.put('before', { package: 'mail', verifier: VERIFIER }, 60_000);
      await own.stop();
      const started = Date.now();
      const err = await rejection(s.put('during', { package: 'mail', verifier: VERIFIER }, 60_000));
      expect(Date.now() - started).to.be.below(1500);
      expect(err.statusCode).to.equal(503);
      expect(err.message).to.match(new RegExp(`^The pending-state store is unavailable: Redis at ${own.url(0).replace(/\//g, '\\/')} could not store a pending login: not connected \\(.*\\); reconnecting$`));
      expect((await rejection(s.size())).statusCode).to.equal(503);
      await new Promise((r) => setTimeout(r, 400));
      const outage = lines.filter((l) => l.includes('lost the connection to Redis'));
      expect(outage).to.have.length(1);
      back = await startRedis({ port: own.port });
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          await s.put('after', { package: 'mail' }, 60_000);
          break;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(await s.take('after')).to.deep.equal({ package: 'mail' });
      expect(lines.filter((l) => l.includes('reconnected to Redis'))).to.have.length(1);
      expect(lines.join('')).not.to.contain(VERIFIER);
    } finally {
      await s.close();
      await own.stop();
      await back?.stop();
    }
  });

  it('refuses to start on an unreachable Redis with an error naming the URL (password hidden) and what to do', async () => {
    const port = await closedPort();
    const s = store(`redis://:hunter2-secret@127.0.0.1:${port}/3`, pino({ level: 'silent' }));
    const err = await rejection(s.connect());
    expect(errors.FMCP_ERR_STATE_STORE.is(err)).to.equal(true);
    expect(err.message).to.equal(
      `The pending-state store is unavailable: cannot use Redis at redis://:***@127.0.0.1:${port}/3: connect ECONNREFUSED 127.0.0.1:${port}: start Redis there or correct --state-store ("stateStore" in a config file)`,
    );
    expect(err.message).not.to.contain('hunter2');
    expect((await rejection(s.take('x'))).message).to.contain('is not connected');
  });

  describe('as the plugin of a kernel', () => {
    it('provides PENDING_STATE, connects at start and disconnects at stop', async () => {
      const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) }).use(stateRedis({ url: redis.url(7), prefix: 'fmcp-k:' }));
      await kernel.start();
      let pending: PendingStateStore;
      try {
        pending = kernel.resolve(PENDING_STATE);
        await pending.put('k1', { package: 'mail' }, 60_000);
        expect(await raw.exists('fmcp-k:pending:k1')).to.equal(0); // raw looks at db 5
        const db7 = new Redis(redis.url(7));
        try {
          expect(await db7.exists('fmcp-k:pending:k1')).to.equal(1);
        } finally {
          db7.disconnect();
        }
      } finally {
        await kernel.stop();
      }
      expect((await rejection(pending.size())).message).to.contain('is not connected');
    });

    it('stops start-up when Redis cannot be reached, naming the URL', async () => {
      const port = await closedPort();
      const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) }).use(stateRedis({ url: `redis://127.0.0.1:${port}/0` }));
      const err = await rejection(kernel.start());
      expect(errors.FMCP_ERR_STATE_STORE.is(err)).to.equal(true);
      expect(err.message).to.contain(`cannot use Redis at redis://127.0.0.1:${port}/0`);
      expect(kernel.state).to.equal('stopped');
    });

    it('refuses a URL that is not redis:// or rediss://, hiding a password', () => {
      for (const url of ['http://127.0.0.1:6379', 'localhost:6379', 'redis://', 'https://u:pw-secret@h/']) {
        let thrown: unknown;
        try {
          stateRedis({ url });
        } catch (err) {
          thrown = err;
        }
        expect(errors.FMCP_ERR_PLUGIN_INVALID.is(thrown), url).to.equal(true);
        expect((thrown as Error).message).to.contain('url must be redis://host:port/db or rediss://host:port/db');
        expect((thrown as Error).message).not.to.contain('pw-secret');
      }
    });
  });
});
