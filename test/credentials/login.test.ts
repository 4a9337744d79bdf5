import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { MemoryStore } from '../../src/store/memory.js';
import { createLockout } from '../../src/credentials/lockout.js';
import { UsersFileDirectory } from '../../src/credentials/users-file.js';
import { verifyLogin } from '../../src/credentials/login.js';
import { hashPassword, verifyPassword } from '../../src/credentials/passwords.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { Lockout, UserDirectory } from '../../src/context.js';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const fixture = JSON.parse(readFileSync(new URL('../fixtures/django-hashes.json', import.meta.url), 'utf8')) as { vectors: { password: string; hash: string }[] };

async function setup(t: { teardown(fn: () => unknown): void }, usersYaml: string, lockoutCfg = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-login-'));
  const path = join(dir, 'users.yaml');
  writeFileSync(path, usersYaml);
  const users = await UsersFileDirectory.open({ path, log, watch: false });
  const store = new MemoryStore();
  const lockout = createLockout(store, lockoutCfg);
  t.teardown(async () => {
    await users.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { users, store, lockout, ctx: { users, lockout } as { users: UserDirectory; lockout: Lockout } };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

t.test('right, wrong, unknown and disabled', async (t) => {
  const hash = await hashPassword('alice-pw');
  const { ctx } = await setup(
    t,
    `users:\n  alice: { email: alice@example.com, password: "${hash}", groups: [staff] }\n  dora: { password: "${hash}", disabled: true }\n  nopw: {}\n`,
  );
  const ok = await verifyLogin(ctx, 'alice', 'alice-pw', '10.0.0.1');
  t.equal(ok.ok, true);
  if (ok.ok) t.equal(ok.user.username, 'alice');
  t.equal((await verifyLogin(ctx, 'alice@EXAMPLE.com', 'alice-pw', '10.0.0.1')).ok, true, 'by email');
  const wrong = await verifyLogin(ctx, 'alice', 'nope', '10.0.0.1');
  const unknown = await verifyLogin(ctx, 'mallory', 'nope', '10.0.0.1');
  const disabled = await verifyLogin(ctx, 'dora', 'alice-pw', '10.0.0.1');
  const noPassword = await verifyLogin(ctx, 'nopw', '', '10.0.0.1');
  t.same(wrong, { ok: false, code: 'invalid_credentials' });
  t.same(unknown, wrong, 'unknown user: the same answer');
  t.same(disabled, wrong, 'disabled user with the right password: the same answer');
  t.same(noPassword, wrong);
  t.same(await verifyLogin(ctx, 'x'.repeat(10_000), 'nope', '10.0.0.1'), wrong, 'absurd login names');
});

t.test('lockout: checked first, holds for the right password, reveals nothing, success resets', async (t) => {
  const hash = await hashPassword('alice-pw');
  const { ctx } = await setup(t, `users:\n  alice: { password: "${hash}" }\n`, { maxFailures: 3, duration: '15m' });
  let calls = 0;
  const verify = (p: string, h: string) => {
    calls++;
    return verifyPassword(p, h);
  };
  // A success in between resets the account counter.
  await verifyLogin(ctx, 'alice', 'bad', '10.0.0.1', { verify });
  await verifyLogin(ctx, 'alice', 'bad', '10.0.0.1', { verify });
  t.equal((await verifyLogin(ctx, 'alice', 'alice-pw', '10.0.0.2', { verify })).ok, true);
  await verifyLogin(ctx, 'alice', 'bad', '10.0.0.3', { verify });
  await verifyLogin(ctx, 'alice', 'bad', '10.0.0.4', { verify });
  t.equal((await verifyLogin(ctx, 'alice', 'alice-pw', '10.0.0.5', { verify })).ok, true, 'not locked after 2 failures since the reset');
  for (let i = 0; i < 3; i++) t.same(await verifyLogin(ctx, 'alice', 'bad', `10.0.1.${i}`, { verify }), { ok: false, code: 'invalid_credentials' });
  const before = calls;
  const locked = await verifyLogin(ctx, 'alice', 'alice-pw', '10.0.2.1', { verify });
  t.equal(locked.ok, false);
  if (!locked.ok) {
    t.equal(locked.code, 'locked', 'the right password is refused while locked');
    t.ok(locked.retryAfterSeconds! > 800 && locked.retryAfterSeconds! <= 900);
  }
  t.equal(calls, before, 'no hash is computed for a locked account');
  t.equal((await verifyLogin(ctx, 'ALICE', 'alice-pw', '10.0.2.1', { verify })).ok, false, 'case variants share the lock');

  // An unknown account locks exactly the same way.
  for (let i = 0; i < 3; i++) await verifyLogin(ctx, 'ghost', 'bad', `10.0.3.${i}`);
  const ghost = await verifyLogin(ctx, 'ghost', 'bad', '10.0.3.9');
  t.same({ ok: ghost.ok, code: !ghost.ok && ghost.code }, { ok: false, code: 'locked' });
});

t.test('a store outage fails closed', async (t) => {
  const hash = await hashPassword('alice-pw');
  const { ctx, store } = await setup(t, `users:\n  alice: { password: "${hash}" }\n`);
  await store.close();
  await t.rejects(verifyLogin(ctx, 'alice', 'alice-pw', '10.0.0.1'), StoreUnavailableError);
});

t.test('timing: unknown user vs wrong password (argon2id users)', async (t) => {
  const hash = await hashPassword('alice-pw');
  const { ctx } = await setup(t, `users:\n  alice: { password: "${hash}" }\n`, { maxFailures: 1000, maxFailuresPerAddress: 1000 });
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 9; i++) {
    let s = performance.now();
    await verifyLogin(ctx, 'alice', `wrong-${i}`, '10.0.0.1');
    known.push(performance.now() - s);
    s = performance.now();
    await verifyLogin(ctx, `nobody-${i}`, `wrong-${i}`, '10.0.0.1');
    unknown.push(performance.now() - s);
  }
  const ratio = median(known) / median(unknown);
  t.ok(ratio > 1 / 3 && ratio < 3, `median wrong ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
});

t.test('timing: unknown users burn the cost of the directory’s own hash format (Django pbkdf2)', async (t) => {
  const v = fixture.vectors[0]!;
  const { ctx } = await setup(t, `users:\n  alice: { password: "${v.hash}" }\n`, { maxFailures: 1000, maxFailuresPerAddress: 1000 });
  await verifyLogin(ctx, 'alice', 'warm-up', '10.0.0.1'); // the directory's hash shape is learnt here
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 5; i++) {
    let s = performance.now();
    await verifyLogin(ctx, 'alice', `wrong-${i}`, '10.0.0.1');
    known.push(performance.now() - s);
    s = performance.now();
    await verifyLogin(ctx, `nobody-${i}`, `wrong-${i}`, '10.0.0.1');
    unknown.push(performance.now() - s);
  }
  const ratio = median(known) / median(unknown);
  t.ok(ratio > 1 / 3 && ratio < 3, `median wrong ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
});
