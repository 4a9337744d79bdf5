// GET /sessions and DELETE /sessions/:id (SPEC 6): a user's sessions on every instance, each
// with its device, address, method and times; ending one reaches every instance within 1 s
// (two gateways on the real Redis); `id` is a handle, never the cookie; nobody ends another
// user's session; a cross-site DELETE is refused (SPEC 4 step 6).
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';
import { startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';
import { call, cookieValue, jsonLogin, PASSWORDS, signIn, usersFile } from './_browser.js';

interface SessionJson { id: string; current: boolean; createdAt: number; lastSeenAt: number; ip: string | null; userAgent: string | null; method: string }

const PHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const DESKTOP_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';

t.test('two instances on one Redis: list on B what A made, end it on A, B refuses it within 1 s', async (t) => {
  const keyPrefix = `test:${randomUUID()}:`;
  t.teardown(() => deleteRedisKeys(keyPrefix));
  const echo = await startTestEcho(t);
  const config = {
    store: { driver: 'redis', redis: { url: REDIS_URL, keyPrefix } },
    users: { file: './users.yaml' },
    authenticators: { web: { type: 'session' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'] }],
  };
  const files = { 'users.yaml': await usersFile() };
  const a = await startTestGateway(t, config, { files });
  const b = await startTestGateway(t, config, { files });

  const phone = cookieValue(await jsonLogin(a.url, 'alice', PASSWORDS.alice, { 'user-agent': PHONE_UA })) as string;
  const desktop = cookieValue(await jsonLogin(b.url, 'alice', PASSWORDS.alice, { 'user-agent': DESKTOP_UA })) as string;
  const mallory = await signIn(a.url, 'mallory');
  const asCookie = (v: string) => ({ cookie: `authgate_session=${v}` });

  const listed = await call(`${b.url}/.auth/sessions`, { headers: asCookie(desktop) });
  t.equal(listed.status, 200);
  t.equal(listed.headers['cache-control'], 'no-store');
  const sessions = listed.json<{ sessions: SessionJson[] }>().sessions;
  t.equal(sessions.length, 2, 'both of alice\'s sessions, from either instance; none of mallory\'s');
  const [first, second] = sessions as [SessionJson, SessionJson];
  t.equal(first.userAgent, PHONE_UA);
  t.equal(second.userAgent, DESKTOP_UA);
  t.same([first.current, second.current], [false, true], 'the caller\'s own session is marked');
  for (const s of sessions) {
    t.equal(s.ip, '127.0.0.1');
    t.equal(s.method, 'session');
    t.ok(s.createdAt > 1_700_000_000 && s.lastSeenAt >= s.createdAt, 'epoch seconds');
    t.match(s.id, /^[A-Za-z0-9_-]{43}$/);
    for (const c of [phone, desktop]) {
      t.notOk(c.includes(s.id) || s.id.includes(c.slice(0, 43)), 'the id is not the cookie, nor any part of it');
    }
  }

  // Another user cannot end it, even knowing its id; a cross-site DELETE is refused.
  const foreign = await call(`${a.url}/.auth/sessions/${first.id}`, { method: 'DELETE', headers: { ...asCookie(mallory), origin: a.url } });
  t.equal(foreign.status, 404);
  const crossSite = await call(`${a.url}/.auth/sessions/${first.id}`, { method: 'DELETE', headers: { ...asCookie(desktop), origin: 'https://evil.test' } });
  t.equal(crossSite.status, 403);
  t.match(crossSite.json(), { code: 'csrf' });
  t.equal((await call(`${a.url}/app/x`, { headers: asCookie(phone) })).status, 200, 'the phone session still works (and A has it cached)');
  t.equal((await call(`${b.url}/app/x`, { headers: asCookie(phone) })).status, 200, 'B too');
  const bad = await call(`${a.url}/.auth/sessions/${encodeURIComponent('../../x')}`, { method: 'DELETE', headers: { ...asCookie(desktop), origin: a.url } });
  t.equal(bad.status, 404);
  t.equal((await call(`${a.url}/.auth/sessions`)).status, 401, 'nobody signed in');

  // The desktop ends the phone session through A; B, which has it cached, refuses it within 1 s.
  const seenBefore = echo.received.length;
  const ended = await call(`${a.url}/.auth/sessions/${first.id}`, { method: 'DELETE', headers: { ...asCookie(desktop), origin: a.url } });
  t.equal(ended.status, 204);
  const endedAt = Date.now();
  t.ok(await waitFor(async () => (await call(`${b.url}/app/x`, { headers: asCookie(phone) })).status === 401, 1000, 10), 'B refuses it');
  t.ok(Date.now() - endedAt <= 1000, `within ${Date.now() - endedAt} ms`);
  t.equal((await call(`${a.url}/app/x`, { headers: asCookie(phone) })).status, 401, 'A refuses it');
  t.equal(echo.received.length, seenBefore, 'the upstream saw nothing with the ended session');
  t.equal((await call(`${a.url}/app/x`, { headers: asCookie(desktop) })).status, 200, 'the caller\'s own session goes on');
  const after = (await call(`${a.url}/.auth/sessions`, { headers: asCookie(desktop) })).json<{ sessions: SessionJson[] }>().sessions;
  t.same(after.map((s) => s.id), [second.id]);
  t.equal((await call(`${a.url}/.auth/sessions/${first.id}`, { method: 'DELETE', headers: { ...asCookie(desktop), origin: a.url } })).status, 404, 'already gone');

  // Ending one's own session signs out and clears the cookie.
  const noOrigin = await call(`${b.url}/.auth/sessions/${second.id}`, { method: 'DELETE', headers: asCookie(desktop) });
  t.equal(noOrigin.status, 403, 'a cookie without Origin or Referer is refused (SPEC 4 step 6)');
  const own = await call(`${b.url}/.auth/sessions/${second.id}`, { method: 'DELETE', headers: { ...asCookie(desktop), referer: `${b.url}/.auth/account` } });
  t.equal(own.status, 204);
  t.equal(cookieValue(own), '', 'cookie cleared');
  t.equal((await call(`${a.url}/app/x`, { headers: asCookie(desktop) })).status, 401);
});

t.test('a store outage fails closed (503 store_unavailable), never a 500', async (t) => {
  // A signs the cookie with the shared secret; B has the same secret but its Redis is unreachable.
  const keyPrefix = `test:${randomUUID()}:`;
  t.teardown(() => deleteRedisKeys(keyPrefix));
  const secret = 'b0f1c5a7e9d3-4c2a-8e61-session-secret-for-outage-test';
  const files = { 'users.yaml': await usersFile() };
  const base = { secrets: { session: secret }, users: { file: './users.yaml' }, authenticators: { web: { type: 'session' } }, routes: [] };
  const a = await startTestGateway(t, { ...base, store: { driver: 'redis', redis: { url: REDIS_URL, keyPrefix } } }, { files });
  const b = await startTestGateway(t, { ...base, store: { driver: 'redis', redis: { url: 'redis://127.0.0.1:1/0', keyPrefix } } }, { files });
  const cookie = { cookie: `authgate_session=${await signIn(a.url)}` };
  const form = { ...cookie, origin: b.url, 'content-type': 'application/x-www-form-urlencoded' };
  const attempts: [string, string, Record<string, string>, string?][] = [
    ['GET', '/.auth/sessions', cookie],
    ['DELETE', `/.auth/sessions/${'a'.repeat(43)}`, { ...cookie, origin: b.url }],
    ['GET', '/.auth/account', cookie],
    ['POST', '/.auth/account/tokens', form, 'name=x&_csrf=y'],
    ['POST', '/.auth/account/sessions/end-others', form, '_csrf=y'],
  ];
  for (const [method, path, headers, body] of attempts) {
    const r = await call(`${b.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    t.equal(r.status, 503, `${method} ${path}`);
    t.match(r.json(), { code: 'store_unavailable' });
  }
});
