// The session service: signed cookies, server-side timeouts, revocation, the live user record.
import t from 'tap';
import { MemoryStore } from '../../src/store/memory.js';
import { SessionCookieSigner, GENERATED_SECRET_KEY } from '../../src/sessions/cookie.js';
import { SessionService, acquireSessionService } from '../../src/sessions/service.js';
import { createSessionAuthenticator } from '../../src/pipeline/authenticators/session.js';
import type { AuthRequest } from '../../src/pipeline/types.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { MapDirectory, countingStore, testContext } from './_context.js';

const SECRET = 'a-session-secret-of-at-least-32-bytes!!';
const OTHER_SECRET = 'another-secret-that-is-32-bytes-or-more';

function setup(opts: { secrets?: string | string[]; idle?: string; absolute?: string; publicUrl?: string } = {}) {
  const inner = new MemoryStore();
  const store = countingStore(inner);
  const users = new MapDirectory();
  users.put({ username: 'alice', email: 'alice@example.test', groups: ['admin'], passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB' });
  const clock = { now: Date.now() };
  const ctx = testContext(store, users, {
    secrets: { session: opts.secrets ?? SECRET },
    login: { session: { idleTimeout: opts.idle ?? '30m', absoluteTimeout: opts.absolute ?? '12h' } },
  }, opts.publicUrl);
  const service = new SessionService(ctx, { now: () => clock.now });
  return { inner, store, users, clock, ctx, service };
}

const aliceSession = (passwordHash?: string) => ({ user: 'alice', email: 'alice@example.test', groups: ['admin'], method: 'session', amr: ['pwd'], mfa: false, passwordHash });

t.test('a created session resolves, and is stored by its public id only', async (t) => {
  const { service, inner } = setup();
  t.teardown(() => service.close());
  const { session, cookie } = await service.create(aliceSession());
  t.match(cookie, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
  t.not(cookie.slice(0, 43), session.id, 'the store key is not the secret id');
  t.ok(await inner.get(`session:${session.id}`));
  t.notOk(await inner.get(`session:${cookie.slice(0, 43)}`));
  t.same(await inner.indexMembers('sessions:user:alice'), [session.id]);
  const lookup = await service.resolveCookie(cookie);
  t.equal(lookup.kind, 'active');
  if (lookup.kind === 'active') t.same({ user: lookup.session.user, groups: lookup.session.groups, method: lookup.session.method }, { user: 'alice', groups: ['admin'], method: 'session' });
  t.same(service.cookieOptions(), { path: '/', httpOnly: true, sameSite: 'lax', secure: false, maxAge: 43_200 });
});

t.test('THREATS 28: tampered, unsigned, foreign-secret and oversized cookies cost no store lookup', async (t) => {
  const { service, store } = setup();
  t.teardown(() => service.close());
  const { cookie } = await service.create(aliceSession());
  const [id, mac] = cookie.split('.') as [string, string];
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const foreign = new SessionCookieSigner(['secret-from-the-example-config-0123456789']).sign(id);
  const forged = [flip(cookie, 44), flip(cookie, cookie.length - 1), flip(cookie, 0), id, `${id}.`, mac, foreign, `${cookie}x`, 'x'.repeat(4096), '', `${id}.${mac}`.toUpperCase(), `s:${cookie}`];
  store.reads = 0;
  for (const value of forged) {
    const lookup = await service.resolveCookie(value);
    t.same(lookup, { kind: 'absent', clear: true }, `forged ${value.slice(0, 12)}… (${value.length})`);
  }
  t.equal(store.reads, 0, 'no store read for any of them');
  t.equal((await service.resolveCookie(undefined)).kind, 'absent');
});

t.test('secret rotation: the first secret signs, every secret verifies', async (t) => {
  const old = setup({ secrets: OTHER_SECRET });
  const { cookie } = await old.service.create(aliceSession());
  old.service.close();
  const rotated = new SessionService(testContext(old.store, old.users, { secrets: { session: [SECRET, OTHER_SECRET] } }));
  const dropped = new SessionService(testContext(old.store, old.users, { secrets: { session: [SECRET] } }));
  t.teardown(() => { rotated.close(); dropped.close(); });
  t.equal((await rotated.resolveCookie(cookie)).kind, 'active');
  t.same(await dropped.resolveCookie(cookie), { kind: 'absent', clear: true });
  const { cookie: fresh } = await rotated.create(aliceSession());
  t.equal((await dropped.resolveCookie(fresh)).kind, 'active', 'new cookies are signed with the first secret');
  t.throws(() => new SessionService(testContext(old.store, old.users, { secrets: { session: 'too-short' } })), /at least 32 bytes/);
});

t.test('without secrets.session one generated secret is shared through the store', async (t) => {
  const store = new MemoryStore();
  const users = new MapDirectory();
  users.put({ username: 'alice', groups: [] });
  const a = new SessionService(testContext(store, users));
  const b = new SessionService(testContext(store, users));
  t.teardown(() => { a.close(); b.close(); });
  const { cookie } = await a.create(aliceSession());
  t.equal((await b.resolveCookie(cookie)).kind, 'active');
  const secret = await store.get(GENERATED_SECRET_KEY);
  t.ok(secret !== null && Buffer.from(secret, 'base64url').length === 32);
});

t.test('THREATS 33: idle timeout on the server, refreshed without a write per request', async (t) => {
  const { service, clock, store, ctx } = setup({ idle: '10m', absolute: '12h' });
  t.teardown(() => service.close());
  const { cookie, session } = await service.create(aliceSession());
  let writes = 0;
  const set = store.set;
  store.set = async (k, v, ttl) => {
    if (k.startsWith('session:seen:')) writes++;
    return set(k, v, ttl);
  };
  // Activity every 5 s for 30 min keeps it alive; idle/20 = 30 s between writes.
  for (let i = 0; i < 360; i++) {
    clock.now += 5_000;
    t.equal((await service.resolveCookie(cookie)).kind, 'active');
  }
  t.ok(writes >= 55 && writes <= 61, `about one write every 30 s (${writes})`);
  // Another instance (cold cache) sees the recorded activity.
  const other = new SessionService(ctx, { now: () => clock.now });
  t.teardown(() => other.close());
  t.equal((await other.resolveCookie(cookie)).kind, 'active');
  clock.now += 10 * 60_000 + 1_000;
  t.same(await service.resolveCookie(cookie), { kind: 'absent', clear: true }, '1 s past the idle timeout');
  await t.resolves(async () => {
    for (let i = 0; i < 50 && (await store.get(`session:${session.id}`)) !== null; i++) await new Promise((r) => setImmediate(r));
  });
  t.equal(await store.get(`session:${session.id}`), null, 'expired session removed from the store');
});

t.test("idle by one instance's view is rechecked against the store", async (t) => {
  const { service, clock, ctx } = setup({ idle: '10m' });
  const other = new SessionService(ctx, { now: () => clock.now });
  t.teardown(() => { service.close(); other.close(); });
  const { cookie } = await service.create(aliceSession());
  t.equal((await other.resolveCookie(cookie)).kind, 'active', 'cached on the other instance');
  for (let i = 0; i < 30; i++) {
    clock.now += 30_000;
    t.equal((await service.resolveCookie(cookie)).kind, 'active');
  }
  t.equal((await other.resolveCookie(cookie)).kind, 'active', 'activity elsewhere counts');
});

t.test('THREATS 33: absolute timeout despite activity', async (t) => {
  const { service, clock } = setup({ idle: '30m', absolute: '1h' });
  t.teardown(() => service.close());
  const { cookie } = await service.create(aliceSession());
  for (let i = 0; i < 59; i++) {
    clock.now += 60_000;
    t.equal((await service.resolveCookie(cookie)).kind, 'active');
  }
  clock.now += 61_000;
  t.equal((await service.resolveCookie(cookie)).kind, 'absent');
});

t.test('THREATS 34: password sessions follow the current user record', async (t) => {
  const { service, users, store } = setup();
  t.teardown(() => service.close());
  const hash = users.users.get('alice')!.passwordHash!;
  const { cookie, session } = await service.create(aliceSession(hash));
  users.put({ ...users.users.get('alice')!, groups: ['staff'], email: 'new@example.test' });
  let lookup = await service.resolveCookie(cookie);
  t.equal(lookup.kind, 'active');
  if (lookup.kind === 'active') t.same([lookup.session.groups, lookup.session.email], [['staff'], 'new@example.test'], 'groups and email refreshed');
  users.put({ ...users.users.get('alice')!, disabled: true });
  t.same(await service.resolveCookie(cookie), { kind: 'absent', clear: true }, 'disabled user');
  await new Promise((r) => setTimeout(r, 10));
  t.equal(await store.get(`session:${session.id}`), null);

  users.put({ ...users.users.get('alice')!, disabled: false });
  const second = await service.create(aliceSession(hash));
  t.equal((await service.resolveCookie(second.cookie)).kind, 'active');
  users.put({ ...users.users.get('alice')!, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$CCCC$DDDD' });
  t.equal((await service.resolveCookie(second.cookie)).kind, 'absent', 'changed password ends the session');

  const third = await service.create(aliceSession());
  users.users.delete('alice');
  t.equal((await service.resolveCookie(third.cookie)).kind, 'absent', 'removed user');
  lookup = await service.resolveCookie(third.cookie);
  t.equal(lookup.kind, 'absent');
});

t.test('OIDC sessions keep the claims they were made with', async (t) => {
  const { service } = setup();
  t.teardown(() => service.close());
  const { cookie } = await service.create({ user: 'bob@idp', groups: ['g'], method: 'oidc:google', amr: ['fed'], mfa: false, oidc: { provider: 'google', sub: '123', sid: 's1' } });
  const lookup = await service.resolveCookie(cookie);
  t.equal(lookup.kind, 'active');
  if (lookup.kind === 'active') t.same([lookup.session.user, lookup.session.method, lookup.session.groups, lookup.session.oidc], ['bob@idp', 'oidc:google', ['g'], { provider: 'google', sub: '123', sid: 's1' }]);
});

t.test('THREATS 35: a pre-MFA session is no identity, and its cookie is kept', async (t) => {
  const { service, ctx } = setup();
  t.teardown(() => service.close());
  const { cookie } = await service.create({ ...aliceSession(), pendingMfa: { methods: ['totp'] } });
  t.equal((await service.resolveCookie(cookie)).kind, 'pending');
  const { service: shared, release } = acquireSessionService(ctx);
  t.teardown(release);
  const auth = createSessionAuthenticator('web', { type: 'session' }, ctx);
  t.teardown(() => auth.close?.());
  const cleared: string[] = [];
  const req = (value: string): AuthRequest => ({ method: 'GET', path: '/', query: '', host: 'x', headers: {}, ip: '127.0.0.1', cookies: { authgate_session: value }, log: ctx.log, clearCookie: (n) => cleared.push(n) });
  t.same(await auth.authenticate(req(cookie)), { kind: 'not-mine' });
  t.same(cleared, [], 'pending cookie not cleared');
  t.same(await auth.authenticate(req('garbage')), { kind: 'not-mine' });
  t.same(cleared, ['authgate_session'], 'bad cookie cleared');
  const ok = await shared.create(aliceSession());
  const outcome = await auth.authenticate(req(ok.cookie));
  t.equal(outcome.kind, 'identity');
  if (outcome.kind === 'identity') {
    t.match(outcome.identity, { user: 'alice', method: 'session', authenticator: 'web', mfa: false, amr: ['pwd'], groups: ['admin'], scopes: [], sessionId: ok.session.id });
    t.notOk(ok.cookie.includes(outcome.identity.sessionId!), 'the identity carries no part of the cookie');
  }
});

t.test("logout on one instance evicts every instance's cache (pub/sub)", async (t) => {
  const { service, ctx, store } = setup();
  const other = new SessionService(ctx);
  t.teardown(() => { service.close(); other.close(); });
  const { cookie, session } = await service.create(aliceSession());
  t.equal((await other.resolveCookie(cookie)).kind, 'active');
  store.reads = 0;
  t.equal((await other.resolveCookie(cookie)).kind, 'active');
  t.equal(store.reads, 0, 'served from the cache');
  await service.destroy(session.id, 'alice');
  t.same(await other.resolveCookie(cookie), { kind: 'absent', clear: true });
  t.same(await store.indexMembers('sessions:user:alice'), []);
  const a = await service.create(aliceSession());
  const b = await service.create(aliceSession());
  t.equal(await other.destroyUser('alice'), 2);
  t.equal((await service.resolveCookie(a.cookie)).kind, 'absent');
  t.equal((await service.resolveCookie(b.cookie)).kind, 'absent');
});

t.test('THREATS 36: store down → fail closed when a read is needed', async (t) => {
  const { service, store, ctx } = setup();
  t.teardown(() => service.close());
  const { cookie } = await service.create(aliceSession());
  const cold = new SessionService(ctx);
  t.teardown(() => cold.close());
  store.down = true;
  await t.rejects(cold.resolveCookie(cookie), StoreUnavailableError);
  await t.rejects(service.create(aliceSession()), StoreUnavailableError);
  const auth = createSessionAuthenticator('web', { type: 'session' }, ctx);
  t.teardown(() => auth.close?.());
  const { service: shared } = acquireSessionService(ctx);
  shared.close(); // make the shared one cold as well
  const outcome = await auth.authenticate({ method: 'GET', path: '/', query: '', host: 'x', headers: {}, ip: '127.0.0.1', cookies: { authgate_session: cookie }, log: ctx.log });
  t.same(outcome, { kind: 'reject', code: 'store_unavailable', detail: undefined, headers: undefined });
  // The warm instance notices the outage within its probe interval and stops trusting its cache.
  const until = async (cond: () => boolean) => {
    for (const end = Date.now() + 5000; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    return cond();
  };
  t.ok(await until(() => service.storeDown), 'outage noticed');
  await t.rejects(service.resolveCookie(cookie), StoreUnavailableError, 'a cached session is not served while the store is down');
  store.down = false;
  t.equal((await cold.resolveCookie(cookie)).kind, 'active', 'works again once the store is back');
  t.ok(await until(() => !service.storeDown), 'recovery noticed');
  t.equal((await service.resolveCookie(cookie)).kind, 'active');
});
