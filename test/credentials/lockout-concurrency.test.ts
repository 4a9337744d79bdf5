// Issue 9.7 and 9.8 against every store driver: a burst of concurrent wrong guesses gets at most
// maxFailures hash evaluations (per account and per address), the right password sent during the
// burst is refused, and username / email / case variants share one account counter.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Lockout, PasswordCheck, UserDirectory } from '../../src/context.js';
import { attemptWithLockout, createLockout } from '../../src/credentials/lockout.js';
import { verifyLogin } from '../../src/credentials/login.js';
import { hashPassword, verifyPassword } from '../../src/credentials/passwords.js';
import { UsersFileDirectory } from '../../src/credentials/users-file.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';
import { waitFor } from '../helpers/gateway.js';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const PASSWORD = `pw-${randomUUID()}`;
let usersYaml: string | undefined;

const stores: Record<string, (t: Test) => Promise<Store>> = {
  memory: async (t) => {
    const store = new MemoryStore();
    t.teardown(() => store.close());
    return store;
  },
  sqlite: async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-lockout-'));
    const store = new SqliteStore({ path: join(dir, 'store.db'), log });
    t.teardown(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return store;
  },
  redis: async (t) => {
    const keyPrefix = `test:lockout:${randomUUID()}:`;
    const store = new RedisStore({ url: REDIS_URL, keyPrefix, log });
    t.teardown(async () => {
      await store.close();
      await deleteRedisKeys(keyPrefix);
    });
    await store.connected();
    return store;
  },
};

async function setup(t: Test, driver: string, lockoutCfg: Record<string, unknown>) {
  usersYaml ??= `users:\n  alice: { email: alice@example.com, password: "${await hashPassword(PASSWORD)}" }\n`;
  const dir = mkdtempSync(join(tmpdir(), 'authgate-lockout-users-'));
  writeFileSync(join(dir, 'users.yaml'), usersYaml);
  const users = await UsersFileDirectory.open({ path: join(dir, 'users.yaml'), log, watch: false });
  t.teardown(async () => {
    await users.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const store = await stores[driver]!(t);
  const lockout = createLockout(store, lockoutCfg);
  return { ctx: { users, lockout } as { users: UserDirectory; lockout: Lockout } };
}

/** A hash check that counts evaluations and holds them until `open()`: every guess is in flight at once. */
function gatedVerify() {
  let evaluated = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const verify = async (password: string, encoded: string): Promise<boolean> => {
    evaluated++;
    await gate;
    return verifyPassword(password, encoded);
  };
  return { verify, open, evaluated: () => evaluated };
}

const codes = (results: PasswordCheck[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = r.ok ? 'ok' : r.code;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
};

for (const driver of Object.keys(stores)) {
  t.test(`${driver}: 30 concurrent wrong guesses + the right password: at most maxFailures evaluated`, async (t) => {
    const { ctx } = await setup(t, driver, { maxFailures: 5, maxFailuresPerAddress: 1000 });
    const gate = gatedVerify();
    const wrong = Array.from({ length: 30 }, (_, i) => verifyLogin(ctx, 'alice', `wrong-${i}`, `10.1.0.${i}`, { verify: gate.verify }));
    // The five granted guesses are now hashing; the right password arrives while they are in flight.
    t.ok(await waitFor(() => gate.evaluated() >= 5, 10_000), 'five guesses reached the hash');
    const right = verifyLogin(ctx, 'alice', PASSWORD, '10.1.1.1', { verify: gate.verify });
    const rightResult = await right;
    gate.open();
    const results = await Promise.all(wrong);
    t.equal(gate.evaluated(), 5, 'exactly maxFailures hashes were evaluated');
    t.same(codes(results), { invalid_credentials: 5, locked: 25 });
    t.equal(rightResult.ok, false);
    if (!rightResult.ok) t.equal(rightResult.code, 'locked', 'the right password in the burst gets 429');
    const after = await verifyLogin(ctx, 'alice', PASSWORD, '10.1.1.2', { verify: gate.verify });
    t.equal(after.ok ? 'ok' : after.code, 'locked', 'and stays locked afterwards');
    t.equal(gate.evaluated(), 5, 'nothing more was hashed');
  });

  t.test(`${driver}: the per-address counter holds under the same burst, across accounts`, async (t) => {
    const { ctx } = await setup(t, driver, { maxFailures: 100, maxFailuresPerAddress: 8 });
    const gate = gatedVerify();
    const guesses = Array.from({ length: 30 }, (_, i) => verifyLogin(ctx, i % 2 === 0 ? 'alice' : `nobody${i}`, `wrong-${i}`, '192.0.2.50', { verify: gate.verify }));
    await waitFor(() => gate.evaluated() >= 4, 10_000); // alice's share of the eight
    gate.open();
    const results = await Promise.all(guesses);
    t.same(codes(results), { invalid_credentials: 8, locked: 22 }, 'eight evaluated (alice hashed, unknown names burnt), the rest refused');
    t.ok(gate.evaluated() <= 8, `at most 8 of alice's guesses hashed (${gate.evaluated()})`);
    const right = await verifyLogin(ctx, 'alice', PASSWORD, '192.0.2.50');
    t.equal(right.ok ? 'ok' : right.code, 'locked', 'the address is locked, even for the right password');
    const elsewhere = await verifyLogin(ctx, 'alice', PASSWORD, '192.0.2.51');
    t.equal(elsewhere.ok, true, 'the account itself is not locked');
  });

  t.test(`${driver}: username, email and case variants share one lock`, async (t) => {
    const { ctx } = await setup(t, driver, { maxFailures: 3, maxFailuresPerAddress: 1000 });
    for (const login of ['alice', 'alice@example.com', 'ALICE@example.com']) {
      const r = await verifyLogin(ctx, login, 'wrong', '10.2.0.1');
      t.equal(r.ok ? 'ok' : r.code, 'invalid_credentials', `${login}: wrong`);
    }
    for (const login of ['alice', 'alice@example.com', 'ALICE@example.com', 'Alice@Example.COM']) {
      const r = await verifyLogin(ctx, login, PASSWORD, '10.2.0.2');
      t.equal(r.ok ? 'ok' : r.code, 'locked', `${login} with the right password is locked`);
    }
  });

  t.test(`${driver}: a success hands the address its attempt back and resets the account`, async (t) => {
    const { ctx } = await setup(t, driver, { maxFailures: 3, maxFailuresPerAddress: 3 });
    for (let i = 0; i < 10; i++) t.equal((await verifyLogin(ctx, 'alice', PASSWORD, '10.3.0.1')).ok, true);
    await verifyLogin(ctx, 'alice', 'wrong', '10.3.0.1');
    await verifyLogin(ctx, 'alice', 'wrong', '10.3.0.1');
    t.equal((await verifyLogin(ctx, 'alice', PASSWORD, '10.3.0.1')).ok, true, 'ten successes and two failures do not lock the address');
  });
}

t.test('attemptWithLockout: the one call for any secret (MFA codes use it too)', async (t) => {
  const store = await stores.memory!(t);
  const lockout = createLockout(store, { maxFailures: 2, maxFailuresPerAddress: 100 });
  let evaluated = 0;
  const wrong = () => attemptWithLockout(lockout, 'alice', '10.4.0.1', async () => (evaluated++, false));
  t.same(await wrong(), { ok: false, reason: 'wrong', newlyLocked: false });
  t.same(await wrong(), { ok: false, reason: 'wrong', newlyLocked: true }, 'the failure that locks says so (audit `lockout`)');
  const locked = await attemptWithLockout(lockout, 'ALICE', '10.4.0.2', async () => (evaluated++, true));
  t.equal(locked.ok ? 'ok' : locked.reason, 'locked');
  t.equal(evaluated, 2, 'nothing evaluated while locked');
  t.equal((await lockout.check('alice', '10.4.0.3')).locked, true, 'the old read-only check sees the same lock');
  await t.rejects(attemptWithLockout(lockout, 'bob', '10.4.0.1', async () => { throw new Error('boom'); }), /boom/, 'a throwing check counts as a failure and rethrows');
});
