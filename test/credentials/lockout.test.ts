import t from 'tap';
import { MemoryStore } from '../../src/store/memory.js';
import { createLockout, accountKey, addressKey, lockoutSettings } from '../../src/credentials/lockout.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { Store } from '../../src/store/types.js';

t.test('defaults', async (t) => {
  t.same(lockoutSettings(undefined), { maxFailures: 5, maxFailuresPerAddress: 20, windowMs: 600_000, durationMs: 900_000 });
  t.same(lockoutSettings({ maxFailures: 3 }), { maxFailures: 3, maxFailuresPerAddress: 12, windowMs: 600_000, durationMs: 900_000 });
});

t.test('account lock after maxFailures, with Retry-After, for existing and unknown names alike', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const lockout = createLockout(store, { maxFailures: 3, duration: '2m' });
  for (const account of ['alice', 'nobody-by-this-name']) {
    for (let i = 1; i <= 2; i++) t.same(await lockout.recordFailure(account, `10.0.0.${i}`), { locked: false });
    t.same(await lockout.check(account, '10.0.0.9'), { locked: false });
    const third = await lockout.recordFailure(account, '10.0.0.3');
    t.equal(third.locked, true);
    const state = await lockout.check(account, '10.0.0.99');
    t.equal(state.locked, true, 'locked from any address');
    if (state.locked) t.ok(state.retryAfterSeconds > 100 && state.retryAfterSeconds <= 120, `retry after ${state.retryAfterSeconds}`);
  }
  t.equal((await lockout.check('ALICE', '10.0.0.1')).locked, true, 'the account is case-folded');
  t.equal((await lockout.check('bob', '10.0.0.1')).locked, false, 'other accounts unaffected');
});

t.test('success resets the account counter, not the address counter', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const lockout = createLockout(store, { maxFailures: 3, maxFailuresPerAddress: 4 });
  await lockout.recordFailure('alice', '10.0.0.1');
  await lockout.recordFailure('alice', '10.0.0.1');
  await lockout.recordSuccess('alice');
  t.same(await lockout.recordFailure('alice', '10.0.0.1'), { locked: false }, 'counter restarted');
  t.equal((await lockout.recordFailure('alice', '10.0.0.1')).locked, true, 'the 4th failure from the address locks it');
  // The address has now failed 4 times: it is locked, for every account.
  t.equal((await lockout.check('carol', '10.0.0.1')).locked, true);
  t.equal((await lockout.check('alice', '10.0.0.2')).locked, false, 'alice from elsewhere is fine (2 failures since reset)');
});

t.test('address lock across many accounts (credential stuffing)', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const lockout = createLockout(store, {});
  for (let i = 0; i < 19; i++) await lockout.recordFailure(`user${i}`, '192.0.2.7');
  t.equal((await lockout.check('fresh', '192.0.2.7')).locked, false);
  await lockout.recordFailure('user19', '192.0.2.7');
  t.equal((await lockout.check('fresh', '192.0.2.7')).locked, true, '20 = 4 x 5 failures lock the address');
  t.equal((await lockout.check('fresh', '192.0.2.8')).locked, false);
});

t.test('address keys: IPv4-mapped IPv6 is IPv4, IPv6 counts per /64', async (t) => {
  t.equal(addressKey('::ffff:192.0.2.1'), addressKey('192.0.2.1'));
  t.equal(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
  t.equal(addressKey('2001:0db8:0001:0002::1'), addressKey('2001:db8:1:2::9'));
  t.not(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  t.not(addressKey('192.0.2.1'), addressKey('192.0.2.2'));
  t.equal(accountKey('Alice'), accountKey('alice'));
  t.match(accountKey('x'.repeat(100_000)), /^[0-9a-f]{40}$/, 'huge login names give small keys');
});

t.test('lock expires after duration; the lock is not extended by further failures', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const lockout = createLockout(store, { maxFailures: 1, duration: '300ms', window: '300ms' });
  await lockout.recordFailure('alice', '10.0.0.1');
  const first = await store.ttl('lockout:lock:acct:' + accountKey('alice'));
  t.ok(first > 0);
  await lockout.recordFailure('alice', '10.0.0.1');
  t.ok((await store.ttl('lockout:lock:acct:' + accountKey('alice'))) <= first, 'not extended');
  const deadline = Date.now() + 5000;
  while ((await lockout.check('alice', '10.0.0.1')).locked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal((await lockout.check('alice', '10.0.0.1')).locked, false, 'unlocked after the duration');
});

t.test('store errors fail closed as StoreUnavailableError', async (t) => {
  const broken = new Proxy({} as Store, {
    get: () => () => Promise.reject(new Error('ECONNREFUSED')),
  });
  const lockout = createLockout(broken, {});
  await t.rejects(lockout.check('a', '1.2.3.4'), StoreUnavailableError);
  await t.rejects(lockout.recordFailure('a', '1.2.3.4'), StoreUnavailableError);
  await t.rejects(lockout.recordSuccess('a'), StoreUnavailableError);
  const closed = new MemoryStore();
  await closed.close();
  await t.rejects(createLockout(closed, {}).check('a', '1.2.3.4'), StoreUnavailableError);
});
