// The JWT revocation list: O(1) in process, persisted in the store, broadcast over pub/sub so a
// revocation holds on every instance within 1 s, reloaded at start, and working while the store
// is down (SPEC 4, 8). Uses the real Redis at 127.0.0.1:6379.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createJwtAuthenticator } from '../../src/pipeline/authenticators/jwt.js';
import type { AuthRequest } from '../../src/pipeline/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { acquireDenylist, REVOKED_CHANNEL } from '../../src/tokens/denylist.js';
import { JwtService } from '../../src/tokens/refresh.js';
import { recordingLogger, tempDir, testContext, TestUsers, waitFor, type Teardown } from './helpers.js';

const REDIS_URL = 'redis://127.0.0.1:6379/0';
const now = () => Math.floor(Date.now() / 1000);
const log = recordingLogger();

/** A key prefix of its own, and every key under it deleted afterwards. */
function redisPrefix(t: Teardown): string {
  const prefix = `test:${randomUUID()}:`;
  t.teardown(async () => {
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${prefix}*`);
    if (keys.length > 0) await r.del(...keys);
    await r.quit();
  });
  return prefix;
}

async function redisStore(t: Teardown, prefix: string): Promise<RedisStore> {
  const store = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log });
  await store.connected();
  t.teardown(() => store.close());
  return store;
}

t.test('in process: revoke by jti and by family, expiry, malformed ids', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const dl = acquireDenylist(store, log);
  t.teardown(() => dl.release());
  await dl.loaded();
  t.equal(dl.isRevoked('a', 'f'), false);
  await dl.revoke('jti', 'a', now() + 60);
  await dl.revoke('fam', 'f', now() + 60);
  t.equal(dl.isRevoked('a', undefined), true);
  t.equal(dl.isRevoked(undefined, 'f'), true);
  t.equal(dl.isRevoked('f', 'a'), false, 'kinds do not mix');
  await dl.revoke('jti', 'gone', now() - 1);
  t.equal(dl.isRevoked('gone', undefined), false, 'a revocation past the token expiry is not kept');
  await t.rejects(dl.revoke('jti', 'bad:id', now() + 60));
  // The same store shares one list.
  const other = acquireDenylist(store, log);
  t.equal(other.isRevoked('a', undefined), true);
  other.release();
  t.equal(dl.isRevoked('a', undefined), true, 'releasing one holder keeps the list for the others');
  // Garbage on the channel is ignored.
  await store.publish(REVOKED_CHANNEL, 'not json');
  await store.publish(REVOKED_CHANNEL, JSON.stringify({ k: 'jti', id: '../x', exp: now() + 60 }));
  t.equal(dl.isRevoked('../x', undefined), false);
});

t.test('two instances on one Redis: a revocation holds on the other within 1 s', async (t) => {
  const prefix = redisPrefix(t);
  const users = new TestUsers();
  const alice = users.add('alice');
  const a = await testContext(t, { store: await redisStore(t, prefix), users });
  const b = await testContext(t, { store: await redisStore(t, prefix), users, dir: a.configDir });
  const serviceA = new JwtService(a);
  t.teardown(() => serviceA.close());
  const authB = createJwtAuthenticator('local', { type: 'jwt', issuer: 'self' }, b);
  t.teardown(() => authB.close?.());
  const check = async (token: string) => {
    const req: AuthRequest = { method: 'GET', path: '/', query: '', host: 'gw.test', headers: { authorization: `Bearer ${token}` }, ip: '127.0.0.1', cookies: {}, log };
    const o = await authB.authenticate(req);
    return o.kind === 'reject' ? o.code : o.kind;
  };
  const pair = await serviceA.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(await check(pair.access), 'identity', 'instance B accepts A’s token');
  const started = Date.now();
  await serviceA.revoke(pair.refresh);
  t.ok(await waitFor(async () => (await check(pair.access)) === 'token_revoked', 1000), 'revoked on B within 1 s');
  t.comment(`propagated in ${Date.now() - started} ms`);

  // An instance started after the revocation learns it from the store.
  const c = await testContext(t, { store: await redisStore(t, prefix), users, dir: a.configDir });
  const dlC = acquireDenylist(c.store, log);
  t.teardown(() => dlC.release());
  await dlC.loaded();
  t.equal(dlC.isRevoked(undefined, JSON.parse(Buffer.from(pair.access.split('.')[1]!, 'base64url').toString()).fam as string), true);
});

t.test('sqlite: revocations survive a restart', async (t) => {
  const path = join(tempDir(t), 'authgate.db');
  const first = new SqliteStore({ path, log });
  const dl1 = acquireDenylist(first, log);
  await dl1.loaded();
  await dl1.revoke('jti', 'token-1', now() + 600);
  await dl1.revoke('fam', 'family-1', now() + 600);
  await dl1.revoke('jti', 'short', now() + 1);
  dl1.release();
  await first.close();

  await new Promise((r) => setTimeout(r, 1100));
  const second = new SqliteStore({ path, log });
  t.teardown(() => second.close());
  const dl2 = acquireDenylist(second, log);
  t.teardown(() => dl2.release());
  await dl2.loaded();
  t.equal(dl2.isRevoked('token-1', undefined), true);
  t.equal(dl2.isRevoked(undefined, 'family-1'), true);
  t.equal(dl2.isRevoked('short', undefined), false, 'expired revocations are not reloaded');
});

t.test('store unreachable: the in-process list keeps working', async (t) => {
  const down = new RedisStore({ url: 'redis://127.0.0.1:1/0', keyPrefix: 'x:', log, redisOptions: { retryStrategy: () => null, connectTimeout: 200 } });
  t.teardown(() => down.close());
  await down.connected();
  const dl = acquireDenylist(down, log);
  t.teardown(() => dl.release());
  await dl.loaded();
  t.equal(dl.isRevoked('x', undefined), false);
  await t.rejects(dl.revoke('jti', 'x', now() + 60), { code: 'store_unavailable' });
  t.equal(dl.isRevoked('x', undefined), true, 'revoked locally even though the store refused');
});
