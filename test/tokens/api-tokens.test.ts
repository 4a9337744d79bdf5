import t from 'tap';
import { randomUUID } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import type { Store } from '../../src/store/types.js';
import { GatewayError, StoreUnavailableError } from '../../src/errors.js';
import { ApiTokenService, hashToken, isWellFormedToken, MAX_TOKENS_PER_USER, REVOKED_CHANNEL } from '../../src/tokens/api-tokens.js';
import { deleteRedisKeys, FakeUsers, REDIS_URL, redisDump, silentLog, waitFor } from './_fixtures.js';

const config = { tokens: { prefix: 'agt_', defaultTtl: '90d' } } as const;

/** A store wrapper that counts calls and can hold `get`s until released. */
function countingStore(inner: Store): { store: Store; calls: Map<string, number>; hold: (on: boolean) => void; release: () => void } {
  const calls = new Map<string, number>();
  let holding = false;
  let waiters: (() => void)[] = [];
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        if (prop === 'get' && holding) return new Promise<void>((r) => waiters.push(r)).then(() => (value as (...a: unknown[]) => unknown).apply(target, args));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store,
    calls,
    hold: (on) => void (holding = on),
    release: () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
  };
}

t.test('token format: prefix, base62 body, checksum; tampering is detected offline', async (t) => {
  const store = new MemoryStore();
  const svc = new ApiTokenService({ store, config });
  t.teardown(() => {
    svc.close();
    return store.close();
  });
  const created = await svc.createToken({ user: 'alice', name: 'ci' });
  t.match(created.token, /^agt_[0-9A-Za-z]{49}$/);
  t.ok(isWellFormedToken(created.token));
  const body = created.token.slice(4);
  const flipped = body[0] === 'a' ? 'b' : 'a';
  t.notOk(isWellFormedToken(`agt_${flipped}${body.slice(1)}`), 'one changed character fails the checksum');
  t.notOk(isWellFormedToken(created.token.slice(0, -1)), 'truncated');
  t.notOk(isWellFormedToken(`${created.token}x`), 'extended');
  t.notOk(isWellFormedToken(`agt_${'A'.repeat(49)}`), 'made up');
  t.ok(isWellFormedToken(`xyz_${body}`), 'the checksum covers the random part only, so a prefix change keeps old tokens valid');
  const again = await svc.createToken({ user: 'alice', name: 'ci' });
  t.not(again.token, created.token);
  t.not(again.id, created.id);

  const custom = new ApiTokenService({ store, config: { tokens: { prefix: 'acme_pat_' } } });
  t.teardown(() => custom.close());
  const c = await custom.createToken({ user: 'alice', name: 'x' });
  t.ok(c.token.startsWith('acme_pat_'));
  t.ok(custom.hasPrefix(c.token));
  t.notOk(svc.hasPrefix(c.token));
});

t.test('create / lookup / list / revoke / expire', async (t) => {
  const store = new MemoryStore();
  let nowMs = Date.UTC(2030, 0, 1);
  const svc = new ApiTokenService({ store, config }, { now: () => nowMs });
  t.teardown(() => {
    svc.close();
    return store.close();
  });
  const a = await svc.createToken({ user: 'alice', name: 'laptop', scopes: ['orders:read', 'orders:read', 'x'] });
  t.same(a.scopes, ['orders:read', 'x'], 'scopes are de-duplicated');
  t.equal(a.createdAt, nowMs / 1000);
  t.equal(a.expiresAt, nowMs / 1000 + 90 * 86400, 'tokens.defaultTtl applies');
  nowMs += 1000;
  const b = await svc.createToken({ user: 'alice', name: 'ci', ttlMs: 60_000 });
  t.equal(b.expiresAt - b.createdAt, 60);
  const other = await svc.createToken({ user: 'bob', name: 'bob-token' });

  const found = await svc.lookup(a.token);
  t.equal(found.status, 'active');
  if (found.status === 'active') t.match(found.record, { id: a.id, user: 'alice', name: 'laptop', scopes: ['orders:read', 'x'] });
  t.same(await svc.lookup(`agt_${'0'.repeat(49)}`), { status: 'unknown' });

  const list = await svc.listTokens('alice');
  t.same(
    list.map((x) => x.id),
    [a.id, b.id],
  );
  t.same(Object.keys(list[0]!).sort(), ['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'scopes']);
  t.equal(list[0]!.lastUsedAt, null);
  t.notMatch(JSON.stringify(list), a.token.slice(4));

  t.equal(await svc.revokeToken('alice', other.id), false, "another user's token cannot be revoked");
  t.equal(await svc.revokeToken('alice', randomUUID()), false);
  t.equal((await svc.lookup(other.token)).status, 'active');

  t.equal(await svc.revokeToken('alice', a.id), true);
  t.equal((await svc.lookup(a.token)).status, 'revoked');
  t.same(
    (await svc.listTokens('alice')).map((x) => x.id),
    [b.id],
  );
  t.equal(await svc.revokeToken('alice', a.id), false, 'revoked ids are gone');

  nowMs += 61_000;
  t.equal((await svc.lookup(b.token)).status, 'expired');
  const users = new FakeUsers([{ username: 'alice' }, { username: 'bob' }]);
  t.same(await svc.verify(b.token, users), { ok: false, code: 'token_expired' });
  t.same(await svc.verify(a.token, users), { ok: false, code: 'token_revoked' });
  t.same(await svc.verify(`agt_${'0'.repeat(49)}`, users), { ok: false, code: 'invalid_token' });
  t.equal((await svc.verify(other.token, users)).ok, true);

  users.put({ username: 'bob', disabled: true });
  t.same(await svc.verify(other.token, users), { ok: false, code: 'invalid_token' }, 'a disabled user has no valid tokens');
  users.users.delete('bob');
  t.same(await svc.verify(other.token, users), { ok: false, code: 'invalid_token' }, 'an unknown user has no valid tokens');

  const rec = await svc.revokeByToken(other.token);
  t.equal(rec?.id, other.id);
  t.equal((await svc.lookup(other.token)).status, 'revoked');
  t.equal(await svc.revokeByToken(`agt_${'0'.repeat(49)}`), undefined);
  t.equal(await svc.revokeByToken('garbage'), undefined);

  await t.rejects(svc.createToken({ user: 'alice', name: 'x', ttlMs: 10 }), GatewayError);
});

t.test('lastUsedAt is recorded at most once a minute, off the request path', async (t) => {
  const inner = new MemoryStore();
  const { store, calls } = countingStore(inner);
  const nowMs = Date.UTC(2030, 0, 1);
  const svc = new ApiTokenService({ store, config, log: silentLog }, { now: () => nowMs });
  t.teardown(() => {
    svc.close();
    return inner.close();
  });
  const users = new FakeUsers([{ username: 'alice' }]);
  const a = await svc.createToken({ user: 'alice', name: 'x' });
  const setsBefore = calls.get('set') ?? 0;
  for (let i = 0; i < 20; i++) t.equal((await svc.verify(a.token, users)).ok, true);
  t.ok(await waitFor(async () => (await svc.listTokens('alice'))[0]!.lastUsedAt === nowMs / 1000));
  t.equal((calls.get('set') ?? 0) - setsBefore, 1, 'twenty uses, one write');
  t.equal(calls.get('get'), 1 + 2 + 1, 'one store read for twenty lookups (plus the listing)');
});

t.test('caches: positive and negative lookups, malformed tokens never reach the store', async (t) => {
  const inner = new MemoryStore();
  const { store, calls } = countingStore(inner);
  const svc = new ApiTokenService({ store, config });
  t.teardown(() => {
    svc.close();
    return inner.close();
  });
  const getCount = (): number => calls.get('get') ?? 0;
  for (let i = 0; i < 100; i++) await svc.lookup(`agt_${randomUUID()}`);
  t.equal(getCount(), 0, 'malformed tokens cost no store read');
  const a = await svc.createToken({ user: 'alice', name: 'x' });
  const b = await svc.createToken({ user: 'alice', name: 'y' });
  await svc.revokeToken('alice', b.id);
  const start = getCount();
  for (let i = 0; i < 10; i++) await svc.lookup(a.token);
  t.equal(getCount() - start, 1, 'positive cache');
  // A well-formed but unknown token: one issued by another gateway's store.
  const elsewhere = new MemoryStore();
  const otherSvc = new ApiTokenService({ store: elsewhere, config });
  const unknown = await otherSvc.createToken({ user: 'x', name: 'x' });
  otherSvc.close();
  await elsewhere.close();
  const before = getCount();
  for (let i = 0; i < 10; i++) t.equal((await svc.lookup(unknown.token)).status, 'unknown');
  t.equal(getCount() - before, 1, 'negative cache');

  // Concurrent lookups of one uncached token share one read.
  const c = await svc.createToken({ user: 'alice', name: 'z' });
  const before2 = getCount();
  const results = await Promise.all(Array.from({ length: 20 }, () => svc.lookup(c.token)));
  t.ok(results.every((r) => r.status === 'active'));
  t.equal(getCount() - before2, 1, 'coalesced');
});

t.test('a store read racing a revocation is not cached', async (t) => {
  const inner = new MemoryStore();
  const { store, calls, hold, release } = countingStore(inner);
  const svc = new ApiTokenService({ store, config });
  t.teardown(() => {
    svc.close();
    return inner.close();
  });
  const a = await svc.createToken({ user: 'alice', name: 'x' });
  const key = `apitoken:h:${hashToken(a.token)}`;
  hold(true);
  const pending = svc.lookup(a.token); // its store read is held
  hold(false);
  // Another instance revokes meanwhile; the broadcast arrives before the held read returns.
  await inner.publish(REVOKED_CHANNEL, hashToken(a.token));
  release();
  t.equal((await pending).status, 'active', 'the read that started before the revocation answers with what it read');
  const rec = JSON.parse((await inner.get(key))!) as Record<string, unknown>;
  await inner.set(key, JSON.stringify({ ...rec, revokedAt: 1 }));
  const before = calls.get('get') ?? 0;
  t.equal((await svc.lookup(a.token)).status, 'revoked', 'its stale answer was not cached');
  t.equal((calls.get('get') ?? 0) - before, 1);
});

t.test('fail closed: store down and not cached → StoreUnavailableError; cached tokens keep working', async (t) => {
  const store = new MemoryStore();
  const svc = new ApiTokenService({ store, config });
  t.teardown(() => svc.close());
  const a = await svc.createToken({ user: 'alice', name: 'x' });
  const b = await svc.createToken({ user: 'alice', name: 'y' });
  t.equal((await svc.lookup(a.token)).status, 'active');
  await store.close();
  t.equal((await svc.lookup(a.token)).status, 'active', 'served from the in-process cache');
  await t.rejects(svc.lookup(b.token), StoreUnavailableError);
  await t.rejects(svc.createToken({ user: 'alice', name: 'z' }), StoreUnavailableError);
});

t.test('per-user cap', async (t) => {
  const store = new MemoryStore();
  const svc = new ApiTokenService({ store, config });
  t.teardown(() => {
    svc.close();
    return store.close();
  });
  for (let i = 0; i < MAX_TOKENS_PER_USER; i++) await svc.createToken({ user: 'alice', name: `t${i}` });
  await t.rejects(svc.createToken({ user: 'alice', name: 'one too many' }), { code: 'bad_request' });
  await svc.createToken({ user: 'bob', name: 'fine' });
  const [first] = await svc.listTokens('alice');
  await svc.revokeToken('alice', first!.id);
  await svc.createToken({ user: 'alice', name: 'after a revocation' });
});

t.test('redis: only hashes are stored; revocation reaches another instance through pub/sub', async (t) => {
  const prefix = `test:${randomUUID()}:`;
  const storeA = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log: silentLog });
  const storeB = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log: silentLog });
  await Promise.all([storeA.connected(), storeB.connected()]);
  const a = new ApiTokenService({ store: storeA, config });
  const b = new ApiTokenService({ store: storeB, config });
  t.teardown(async () => {
    a.close();
    b.close();
    await Promise.all([storeA.close(), storeB.close()]);
    await deleteRedisKeys(prefix);
  });
  const created = await a.createToken({ user: 'alice', name: 'x', scopes: ['s1'] });
  const dump = await redisDump(prefix);
  t.ok(dump.includes(hashToken(created.token)), 'the hash is stored');
  t.notOk(dump.includes(created.token.slice(4, 20)), 'no part of the token text is stored');
  t.equal((await b.lookup(created.token)).status, 'active');

  // Wait until B's subscription is live.
  let probed = false;
  const off = storeB.subscribe(REVOKED_CHANNEL, (m) => {
    if (m === 'probe') probed = true;
  });
  t.teardown(off);
  t.ok(await waitFor(async () => (await storeA.publish(REVOKED_CHANNEL, 'probe'), probed), 5000, 50));

  const started = Date.now();
  t.equal(await a.revokeToken('alice', created.id), true);
  t.ok(await waitFor(async () => (await b.lookup(created.token)).status === 'revoked', 1000, 10), 'B stops accepting within 1 s');
  t.ok(Date.now() - started < 1000);
});
