// Pending (pre-MFA) sessions (SPEC 6 /login, THREATS 35): they expire after 5 minutes whatever
// the absolute timeout, are never an identity, and their store record expires with them.
import t from 'tap';
import { MemoryStore } from '../../src/store/memory.js';
import { PENDING_MFA_TTL_MS, SessionService } from '../../src/sessions/service.js';
import { MapDirectory, testContext } from '../sessions/_context.js';
import type { Config } from '../../src/config/schema.js';

t.test('a pending session ends after 5 minutes; a full one lives on', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const users = new MapDirectory();
  users.put({ username: 'alice' });
  let now = Date.now();
  const ctx = testContext(store, users, { secrets: { session: 'k'.repeat(40) }, login: { session: { idleTimeout: '1h', absoluteTimeout: '12h' } } } as Partial<Config>);
  const service = new SessionService(ctx, { now: () => now });
  t.teardown(() => service.close());
  const base = { user: 'alice', groups: [], method: 'session', amr: ['pwd'], mfa: false };
  const pending = await service.create({ ...base, pendingMfa: { methods: ['totp'] } });
  const full = await service.create(base);
  t.equal((await service.resolveCookie(pending.cookie)).kind, 'pending');
  const ttl = await store.ttl(`session:${pending.session.id}`);
  t.ok(ttl > 0 && ttl <= PENDING_MFA_TTL_MS, 'the store record expires with it');
  now += PENDING_MFA_TTL_MS - 1000;
  t.equal((await service.resolveCookie(pending.cookie)).kind, 'pending', 'still pending just before 5 minutes');
  now += 2000;
  t.equal((await service.resolveCookie(pending.cookie)).kind, 'absent', 'gone after 5 minutes');
  t.equal((await service.resolveCookie(full.cookie)).kind, 'active', 'a full session is unaffected');
});
