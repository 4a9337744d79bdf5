// TOTP against a controlled clock (RFC 6238; THREATS 54, 56): window edges, replay of a code and
// of an older step, the enrolment code consumed, concurrent use of one code (one wins), recovery
// codes single use, and secrets sealed at rest.
import t, { type Test } from 'tap';
import { generate } from 'otplib';
import { MemoryStore } from '../../src/store/memory.js';
import { MfaService } from '../../src/mfa/service.js';
import { MfaKeys } from '../../src/mfa/sealing.js';
import { countingStore, MapDirectory, testContext } from '../sessions/_context.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { Config } from '../../src/config/schema.js';

const SECRET = 'x'.repeat(40);

function setup(t: Test, window = 1) {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const users = new MapDirectory();
  users.put({ username: 'alice' });
  let now = 1_700_000_010_000;
  const ctx = testContext(store, users, { secrets: { mfa: SECRET }, mfa: { totp: { window } } } as Partial<Config>);
  const mfa = new MfaService(ctx, { now: () => now });
  t.teardown(() => mfa.close());
  return { store, mfa, at: (ms: number) => (now = ms), now: () => now };
}

async function enrolled(t: Test, window = 1) {
  const s = setup(t, window);
  const { secret } = await s.mfa.enrollTotp('alice');
  const codes = await s.mfa.confirmTotp('alice', await generate({ secret, epoch: Math.floor(s.now() / 1000) }));
  t.ok(codes, 'enrolment confirmed');
  return { ...s, secret, codes: codes! };
}

const code = (secret: string, ms: number) => generate({ secret, epoch: Math.floor(ms / 1000) });

t.test('window 1: steps T-1..T+1 pass, T±2 do not', async (t) => {
  const s = await enrolled(t);
  const T0 = s.now();
  s.at(T0 + 10 * 60_000); // ten minutes later: far from the enrolment step
  const now = s.now();
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now - 60_000)), false, 'T-2 refused');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now + 60_000)), false, 'T+2 refused');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now - 30_000)), true, 'T-1 accepted');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now - 30_000)), false, 'the same code again: replay refused');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now)), true, 'T accepted (a later step)');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now - 30_000)), false, 'an older step after a newer one: refused');
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now + 30_000)), true, 'T+1 accepted');
  s.at(now + 30_000);
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, now + 30_000)), false, 'at the next step boundary the used code is still refused');
  t.equal(await s.mfa.verifyTotp('alice', '12345'), false, 'malformed');
  t.equal(await s.mfa.verifyTotp('alice', 'abcdef'), false, 'malformed');
  t.equal(await s.mfa.verifyTotp('nobody', await code(s.secret, now)), false, 'no factor');
});

t.test('window 0: only the current step', async (t) => {
  const s = await enrolled(t, 0);
  s.at(s.now() + 10 * 60_000);
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, s.now() - 30_000)), false);
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, s.now() + 30_000)), false);
  t.equal(await s.mfa.verifyTotp('alice', await code(s.secret, s.now())), true);
});

t.test('the enrolment code is consumed: it cannot be the first login code (RFC 6238 §5.2)', async (t) => {
  const s = setup(t);
  const { secret } = await s.mfa.enrollTotp('alice');
  const first = await code(secret, s.now());
  const wrong = first === '000000' ? '000001' : '000000';
  t.equal(await s.mfa.confirmTotp('alice', wrong), undefined, 'a wrong code does not confirm');
  t.ok(await s.mfa.confirmTotp('alice', first));
  t.equal(await s.mfa.verifyTotp('alice', first), false, 'the enrolment code is spent');
  t.equal(await s.mfa.confirmTotp('alice', first), undefined, 'the enrolment itself is single use');
});

t.test('concurrent use of one code: exactly one wins', async (t) => {
  const s = await enrolled(t);
  s.at(s.now() + 5 * 60_000);
  const c = await code(s.secret, s.now());
  const results = await Promise.all(Array.from({ length: 20 }, () => s.mfa.verifyTotp('alice', c)));
  t.equal(results.filter(Boolean).length, 1);
});

t.test('recovery codes: single use, keyed hashes only, one winner under concurrency', async (t) => {
  const s = await enrolled(t);
  t.equal(s.codes.length, 10);
  t.equal(new Set(s.codes).size, 10);
  for (const c of s.codes) t.match(c, /^[a-z2-9]{5}-[a-z2-9]{5}$/);
  const dump = JSON.stringify(await s.store.get('mfa:recovery:alice'));
  for (const c of s.codes) t.notOk(dump.includes(c) || dump.includes(c.replace('-', '')), 'no code in the store');
  t.equal(await s.mfa.useRecoveryCode('alice', s.codes[0]!.toUpperCase()), true, 'case and dash do not matter');
  t.equal(await s.mfa.useRecoveryCode('alice', s.codes[0]!), false, 'used once');
  const race = await Promise.all(Array.from({ length: 10 }, () => s.mfa.useRecoveryCode('alice', s.codes[1]!)));
  t.equal(race.filter(Boolean).length, 1, 'one winner');
  t.equal(await s.mfa.recoveryCodesLeft('alice'), 8);
  const fresh = await s.mfa.regenerateRecoveryCodes('alice');
  t.equal(await s.mfa.useRecoveryCode('alice', s.codes[2]!), false, 'the old set stops working');
  t.equal(await s.mfa.useRecoveryCode('alice', fresh[0]!), true);
});

t.test('recovery codes have their own attempt counter', async (t) => {
  const s = await enrolled(t);
  for (let i = 0; i < 10; i++) await s.mfa.useRecoveryCode('alice', 'aaaaa-aaaaa');
  t.equal(await s.mfa.recoveryAllowed('alice'), false);
});

t.test('secrets at rest: sealed (AES-256-GCM), bound to their record', async (t) => {
  const s = await enrolled(t);
  const sealed = (await s.store.get('mfa:totp:alice'))!;
  t.notOk(sealed.includes(s.secret), 'the secret is not in the store');
  t.match(sealed, /^v1\./);
  const keys = new MfaKeys(SECRET);
  t.ok(keys.open(sealed, 'totp:alice')?.includes(s.secret), 'opens with the key and its record');
  t.equal(keys.open(sealed, 'totp:mallory'), undefined, 'copied onto another user: does not open');
  t.equal(new MfaKeys('y'.repeat(40)).open(sealed, 'totp:alice'), undefined, 'another key: does not open');
  const flipped = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.at(-1);
  t.equal(keys.open(flipped, 'totp:alice'), undefined, 'tampered: does not open');
  t.throws(() => new MfaKeys('short'), /at least 32 bytes/);
});

t.test('removing and resetting factors', async (t) => {
  const s = await enrolled(t);
  t.equal(await s.mfa.hasTotp('alice'), true);
  const r = await s.mfa.resetUser('alice', { method: 'admin-cli' });
  t.same(r, { totp: true, webauthn: 0, recoveryCodes: 10 });
  t.equal(await s.mfa.hasTotp('alice'), false);
  t.equal(await s.mfa.recoveryCodesLeft('alice'), 0);
});

t.test('store down: code checks fail closed (StoreUnavailableError, never a pass)', async (t) => {
  const s = await enrolled(t);
  const down = countingStore(s.store);
  down.down = true;
  const ctx = testContext(down, new MapDirectory(), { secrets: { mfa: SECRET } } as Partial<Config>);
  const mfa = new MfaService(ctx, { now: s.now });
  t.teardown(() => mfa.close());
  await t.rejects(mfa.verifyTotp('alice', await code(s.secret, s.now())), StoreUnavailableError);
  await t.rejects(mfa.loginMethods({ username: 'alice', groups: [], disabled: false, mfaRequired: false, version: 'v' }), StoreUnavailableError);
});
