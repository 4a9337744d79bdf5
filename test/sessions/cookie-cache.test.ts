// The signer's memo of verified cookie values: same answers as a fresh HMAC check, only correctly
// signed values are kept, a new signer starts empty, and every session check still runs.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { GENERATED_SECRET_KEY, sessionHandle, SessionCookieSigner } from '../../src/sessions/cookie.js';
import { SessionService } from '../../src/sessions/service.js';
import { createSessionAuthenticator } from '../../src/pipeline/authenticators/session.js';
import type { AuthRequest } from '../../src/pipeline/types.js';
import { MapDirectory, countingStore, testContext } from './_context.js';

const SECRET = 'a-session-secret-of-at-least-32-bytes!!';
const OTHER_SECRET = 'another-secret-that-is-32-bytes-or-more';

/** `null`: no `secrets.session`, so the secret is generated in the store. */
function setup(secrets: string | string[] | null = SECRET) {
  const inner = new MemoryStore();
  const store = countingStore(inner);
  const users = new MapDirectory();
  users.put({ username: 'alice', email: 'alice@example.test', groups: ['admin'], passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB' });
  const clock = { now: Date.now() };
  const ctx = testContext(store, users, {
    ...(secrets !== null ? { secrets: { session: secrets } } : {}),
    login: { session: { idleTimeout: '10m', absoluteTimeout: '12h' } },
  });
  const service = new SessionService(ctx, { now: () => clock.now });
  return { inner, store, users, clock, ctx, service };
}

const aliceSession = () => ({ user: 'alice', email: 'alice@example.test', groups: ['admin'], method: 'session', amr: ['pwd'], mfa: false });
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

t.test('memoized answers equal a fresh HMAC check: valid, tampered, unsigned, foreign secret', async (t) => {
  const signer = new SessionCookieSigner([SECRET, OTHER_SECRET]);
  const id = signer.newId();
  const cookie = signer.sign(id);
  const byOld = new SessionCookieSigner([OTHER_SECRET]).sign(id);
  const foreign = new SessionCookieSigner(['secret-from-the-example-config-0123456789']).sign(id);
  const mac = cookie.slice(44);
  const bad = [flip(cookie, 44), flip(cookie, cookie.length - 1), flip(cookie, 0), id, `${id}.`, mac, foreign, `${cookie}x`, 'x'.repeat(4096), '', cookie.toUpperCase(), `s:${cookie}`];
  for (let round = 0; round < 2; round++) {
    t.equal(signer.handleOf(cookie), sessionHandle(id), `valid (round ${round})`);
    t.equal(signer.handleOf(byOld), sessionHandle(id), `signed by the second secret (round ${round})`);
    for (const value of bad) {
      t.equal(signer.verify(value), undefined);
      t.equal(signer.handleOf(value), undefined, `refused ${value.slice(0, 12)}… (${value.length}, round ${round})`);
    }
  }
  t.equal(signer.verifiedCount, 2, 'only the two correctly signed values are kept');
  t.equal(signer.handleOf(flip(cookie, 60)), undefined, 'a value differing from a cached one is checked afresh');
});

t.test('through the service: the cookie is verified once, the session is looked up every time', async (t) => {
  const { service, store, users, clock } = setup();
  t.teardown(() => service.close());
  const { cookie, session } = await service.create(aliceSession());
  const signer = await service.signer();
  t.equal(signer.verifiedCount, 0);
  t.equal((await service.resolveCookie(cookie)).kind, 'active');
  t.equal(signer.verifiedCount, 1);
  t.equal(await service.sessionIdOf(cookie), session.id, 'the memo yields the public handle');
  // Idle timeout still applies to a memoized cookie (the store has no newer activity either).
  clock.now += 11 * 60_000;
  store.reads = 0;
  t.same(await service.resolveCookie(cookie), { kind: 'absent', clear: true }, 'idle');
  t.ok(store.reads > 0, 'asked the store');
  // A disabled user ends a memoized cookie's session.
  const again = await service.create(aliceSession());
  t.equal((await service.resolveCookie(again.cookie)).kind, 'active');
  users.put({ ...users.users.get('alice')!, disabled: true });
  t.same(await service.resolveCookie(again.cookie), { kind: 'absent', clear: true }, 'disabled user');
  users.put({ ...users.users.get('alice')!, disabled: false });
  t.same(await service.resolveCookie(again.cookie), { kind: 'absent', clear: true }, 'the ended session stays ended');
  // A pre-MFA session is refused on every request, memoized or not.
  const pending = await service.create({ ...aliceSession(), pendingMfa: { methods: ['totp'] } });
  t.equal((await service.resolveCookie(pending.cookie)).kind, 'pending');
  t.equal((await service.resolveCookie(pending.cookie)).kind, 'pending');
});

t.test('a memoized cookie whose session was logged out is refused on the next request', async (t) => {
  const { service, ctx } = setup();
  const other = new SessionService(ctx);
  const auth = createSessionAuthenticator('web', { type: 'session' }, ctx);
  t.teardown(() => { service.close(); other.close(); auth.close?.(); });
  const cleared: string[] = [];
  const req = (cookie: string): AuthRequest => ({ method: 'GET', path: '/', query: '', host: 'x', headers: {}, ip: '127.0.0.1', cookies: { authgate_session: cookie }, log: ctx.log, clearCookie: (n) => cleared.push(n) });

  const first = await service.create(aliceSession());
  t.equal((await auth.authenticate(req(first.cookie))).kind, 'identity');
  t.equal((await auth.authenticate(req(first.cookie))).kind, 'identity');
  // Logout on another instance: the revocation reaches the authenticator's service via pub/sub.
  t.same(await other.destroyByCookie(first.cookie), { id: first.session.id, user: 'alice' });
  t.same(await auth.authenticate(req(first.cookie)), { kind: 'not-mine' });
  t.same(cleared, ['authgate_session'], 'and its cookie is cleared');

  // Logout on the same instance that memoized the cookie.
  const second = await service.create(aliceSession());
  t.equal((await service.resolveCookie(second.cookie)).kind, 'active');
  t.equal((await service.signer()).verifiedCount, 1);
  await service.destroyByCookie(second.cookie);
  t.same(await service.resolveCookie(second.cookie), { kind: 'absent', clear: true });
});

t.test('a new signer (changed secrets) does not accept what only the removed secret signed', async (t) => {
  const old = setup(OTHER_SECRET);
  const { cookie } = await old.service.create(aliceSession());
  t.equal((await old.service.resolveCookie(cookie)).kind, 'active');
  t.equal((await old.service.signer()).verifiedCount, 1, 'memoized under the old secret');
  old.service.close();
  const rotated = new SessionService(testContext(old.store, old.users, { secrets: { session: [SECRET, OTHER_SECRET] } }));
  const dropped = new SessionService(testContext(old.store, old.users, { secrets: { session: [SECRET] } }));
  t.teardown(() => { rotated.close(); dropped.close(); });
  t.equal((await rotated.resolveCookie(cookie)).kind, 'active', 'still accepted while the old secret verifies');
  for (let i = 0; i < 2; i++) t.same(await dropped.resolveCookie(cookie), { kind: 'absent', clear: true }, `refused once the old secret is removed (${i})`);
  t.equal((await dropped.signer()).verifiedCount, 0);
});

t.test('a regenerated store secret starts from an empty memo', async (t) => {
  const a = setup(null);
  t.teardown(() => a.service.close());
  const { cookie } = await a.service.create(aliceSession());
  t.equal((await a.service.resolveCookie(cookie)).kind, 'active');
  t.equal((await a.service.signer()).verifiedCount, 1);
  // Same store secret, new signer (a reload): accepted, memo rebuilt from a real check.
  const reloaded = new SessionService(testContext(a.store, a.users));
  t.teardown(() => reloaded.close());
  t.equal((await reloaded.signer()).verifiedCount, 0);
  t.equal((await reloaded.resolveCookie(cookie)).kind, 'active');
  // The generated secret is replaced: the next signer refuses the old cookie.
  await a.inner.delete(GENERATED_SECRET_KEY);
  const regenerated = new SessionService(testContext(a.store, a.users));
  t.teardown(() => regenerated.close());
  t.same(await regenerated.resolveCookie(cookie), { kind: 'absent', clear: true });
  t.equal((await regenerated.signer()).verifiedCount, 0);
});

t.test('a flood of 20k distinct forged cookies leaves the memo empty and costs no store read', async (t) => {
  const { service, store } = setup();
  t.teardown(() => service.close());
  const signer = await service.signer();
  const foreign = new SessionCookieSigner(['secret-from-the-example-config-0123456789']);
  store.reads = 0;
  for (let i = 0; i < 20_000; i++) {
    const id = randomBytes(32).toString('base64url');
    // Well-formed values with a random MAC, and values signed with a secret the gateway lacks.
    const value = i % 2 === 0 ? `${id}.${randomBytes(32).toString('base64url')}` : foreign.sign(id);
    const lookup = await service.resolveCookie(value);
    if (lookup.kind !== 'absent') t.fail(`forged value accepted: ${lookup.kind}`);
  }
  t.equal(signer.verifiedCount, 0, 'nothing remembered');
  t.equal(store.reads, 0, 'no store read');
  const { cookie } = await service.create(aliceSession());
  t.equal((await service.resolveCookie(cookie)).kind, 'active');
  t.equal(signer.verifiedCount, 1, 'a real cookie is remembered');
});
