import { expect } from 'chai';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createKernel, errors, REPLICA_DIRECTORY, stateRedis } from '../../../index.js';
import { until } from '../../helpers/request.js';
import { skipWithout, startRedis, type RedisServer } from '../../helpers/services.js';

describe('state-redis: the replica directory (REPLICA_DIRECTORY) in a real redis-server', function () {
  let redis: RedisServer;
  let raw: Redis;

  before(async function () {
    skipWithout(this, 'redis-server');
    redis = await startRedis();
    raw = new Redis(redis.url(8), { lazyConnect: true });
    await raw.connect();
  });
  after(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  it('publishes the address the replica listens on, keeps it fresh past its expiry, and removes it on stop', async () => {
    const kernel = createKernel({ port: 0, replicaId: 'gw1', logger: pino({ level: 'silent' }) }).use(stateRedis({ url: redis.url(8), prefix: 'fmcp-r:', replicaTtlMs: 600 }));
    await kernel.start();
    const key = 'fmcp-r:replica:gw1';
    try {
      const url = `http://127.0.0.1:${kernel.address().port}`;
      expect(await raw.get(key)).to.equal(url);
      const ttl = await raw.pttl(key);
      expect(ttl).to.be.greaterThan(0).and.at.most(600);
      // refreshed: between two readings its remaining time goes up again (it only falls otherwise)
      let previous = ttl;
      await until(async () => {
        const now = await raw.pttl(key);
        const refreshed = now > previous;
        previous = now;
        return refreshed ? true : undefined;
      }, 5000, 'a refresh of the entry');
      const directory = kernel.resolve(REPLICA_DIRECTORY);
      expect(directory.self).to.equal('gw1');
      expect(await directory.lookup('gw1')).to.equal(url);
      expect(await directory.lookup('gw2')).to.equal(undefined);
      // an id no replica can have is never a key: nothing else in the store is reachable through it
      await raw.set('fmcp-r:replica:x:y', 'http://elsewhere.example');
      expect(await directory.lookup('x:y')).to.equal(undefined);
    } finally {
      await kernel.stop();
    }
    expect(await raw.exists(key)).to.equal(0);
  });

  it('publishes replicaUrl when given, and leaves a successor\'s entry alone on stop', async () => {
    const kernel = createKernel({ port: 0, replicaId: 'gw3', logger: pino({ level: 'silent' }) })
      .use(stateRedis({ url: redis.url(8), prefix: 'fmcp-r:', replicaUrl: 'http://10.0.0.7:8101/' }));
    await kernel.start();
    try {
      expect(await raw.get('fmcp-r:replica:gw3')).to.equal('http://10.0.0.7:8101');
      await raw.set('fmcp-r:replica:gw3', 'http://10.0.0.8:8101');
    } finally {
      await kernel.stop();
    }
    expect(await raw.get('fmcp-r:replica:gw3')).to.equal('http://10.0.0.8:8101');
  });

  it('provides no directory without a replica id', async () => {
    const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }) }).use(stateRedis({ url: redis.url(8), prefix: 'fmcp-r:' }));
    await kernel.start();
    try {
      expect(kernel.tryResolve(REPLICA_DIRECTORY)).to.equal(undefined);
    } finally {
      await kernel.stop();
    }
  });

  it('refuses a replicaUrl that is not http(s)', () => {
    let thrown: unknown;
    try {
      stateRedis({ url: redis.url(8), replicaUrl: 'ftp://10.0.0.7' });
    } catch (err) {
      thrown = err;
    }
    expect(errors.FMCP_ERR_PLUGIN_INVALID.is(thrown)).to.equal(true);
    expect((thrown as Error).message).to.contain('replicaUrl must be an http(s) URL such as http://10.0.0.7:8101, got "ftp://10.0.0.7"');
  });
});
