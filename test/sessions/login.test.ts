// /login, /logout, /me against a real gateway (SPEC 6; THREATS 26-32, 35, 37-41).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { startTestEcho, startTestGateway, type Teardown, type TestGateway } from '../helpers/gateway.js';
import { acquireSessionService } from '../../src/sessions/service.js';
import { PASSWORDS, call, cookieValue, formLogin, jsonLogin, me, setCookieFor, signIn, usersFile } from './_browser.js';

async function gateway(t: Teardown, extra: Record<string, unknown> = {}): Promise<{ gw: TestGateway; echo: Awaited<ReturnType<typeof startTestEcho>> }> {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    secrets: { session: randomBytes(32).toString('base64url') },
    login: { lockout: { maxFailures: 3, window: '10m', duration: '15m' } },
    authenticators: { web: { type: 'session' } },
    routes: [
      { name: 'admin', match: { path: '/admin/**' }, upstream: echo.url, auth: ['web'], require: { groups: ['admin'] }, onUnauthenticated: 'login' },
      { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'] },
    ],
    ...extra,
  }, { files: { 'users.yaml': await usersFile() } });
  return { gw, echo };
}

t.test('GET /login renders an escaped, locked-down page', async (t) => {
  const { gw } = await gateway(t);
  const page = await call(`${gw.url}/.auth/login?rd=${encodeURIComponent('/admin/x?a=1&b="><script>alert(1)</script>')}`);
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(page.headers['cache-control'], 'no-store');
  t.equal(page.headers['x-frame-options'], 'DENY');
  t.equal(page.headers['referrer-policy'], 'same-origin');
  const csp = String(page.headers['content-security-policy']);
  for (const d of ["default-src 'none'", "img-src data:", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) t.ok(csp.includes(d), d);
  t.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/);
  t.notOk(page.body.includes('<script'), 'no script, and the rd is escaped');
  t.ok(page.body.includes('name="rd" value="/admin/x?a=1&amp;b=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"'));
  t.match(page.body, /<label for="username">Username or email<\/label>/);
  t.match(page.body, /autocomplete="username"/);
  t.match(page.body, /autocomplete="current-password"/);
  t.notOk(page.body.includes('/oidc/'), 'no provider buttons without oidc authenticators');
});

t.test('JSON login, /me, cookie attributes', async (t) => {
  const { gw } = await gateway(t);
  const ok = await jsonLogin(gw.url, 'alice', PASSWORDS.alice);
  t.equal(ok.status, 200);
  t.equal(ok.headers['cache-control'], 'no-store');
  t.match(ok.json(), { user: { user: 'alice', email: 'alice@example.test', groups: ['admin', 'staff'], scopes: [], method: 'session', mfa: false } });
  const set = setCookieFor(ok)!;
  t.match(set, /^authgate_session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; /);
  t.match(set, /; Max-Age=43200/);
  t.match(set, /; Path=\//);
  t.match(set, /; HttpOnly/);
  t.match(set, /; SameSite=Lax/);
  t.notMatch(set, /Domain=/i);
  t.notMatch(set, /Secure/i, 'plain-http publicUrl: no Secure');
  const who = await me(gw.url, cookieValue(ok));
  t.equal(who.status, 200);
  t.equal(who.headers['cache-control'], 'no-store');
  const body = who.json<{ authTime: number }>();
  t.same(body, { user: 'alice', email: 'alice@example.test', groups: ['admin', 'staff'], scopes: [], method: 'session', mfa: false, authTime: body.authTime });
  t.ok(Math.abs(body.authTime - Date.now() / 1000) < 60);
  const anon = await me(gw.url, undefined);
  t.equal(anon.status, 401);
  t.match(anon.json(), { code: 'unauthenticated' });
  const byEmail = await jsonLogin(gw.url, 'alice@example.test', PASSWORDS.alice);
  t.equal(byEmail.status, 200, 'login by email');
  t.notOk(gw.rawLogs.some((l) => l.includes(PASSWORDS.alice) || l.includes(cookieValue(ok)!.slice(0, 20))), 'no password or cookie in the logs');
});

t.test('https publicUrl → Secure cookie', async (t) => {
  const { gw } = await gateway(t, { server: { publicUrl: 'https://gw.test' } });
  const ok = await jsonLogin(gw.url, 'alice', PASSWORDS.alice);
  t.match(setCookieFor(ok), /; Secure/);
});

t.test('THREATS 26: unknown user and wrong password look the same; lockout answers 429', async (t) => {
  const { gw } = await gateway(t);
  const wrong = await jsonLogin(gw.url, 'alice', 'nope');
  const unknown = await jsonLogin(gw.url, 'nobody', 'nope');
  t.equal(wrong.status, 401);
  t.equal(unknown.status, 401);
  t.equal(wrong.body, unknown.body);
  t.match(wrong.json(), { code: 'invalid_credentials' });
  t.equal(setCookieFor(wrong), undefined);
  const formWrong = await formLogin(gw.url, { username: 'alice', password: 'nope' });
  const formUnknown = await formLogin(gw.url, { username: 'nobody', password: 'nope' });
  t.equal(formWrong.status, 401);
  t.match(formWrong.headers['content-type'], /text\/html/);
  t.match(formWrong.body, /role="alert" id="login-error"/);
  t.match(formWrong.body, /aria-invalid="true" aria-describedby="login-error"/);
  t.equal(formWrong.body.replace('value="alice"', ''), formUnknown.body.replace('value="nobody"', ''), 'same page apart from the echoed name');
  // alice now has 2 failures; the 3rd locks, then even the right password gets 429.
  await jsonLogin(gw.url, 'alice', 'nope');
  const locked = await jsonLogin(gw.url, 'alice', PASSWORDS.alice);
  t.equal(locked.status, 429);
  t.match(locked.json(), { code: 'locked' });
  t.ok(Number(locked.headers['retry-after']) > 0);
  const lockedForm = await formLogin(gw.url, { username: 'alice', password: PASSWORDS.alice });
  t.equal(lockedForm.status, 429);
  t.match(lockedForm.body, /Too many failed sign-in attempts/);
  const missing = await jsonLogin(gw.url, '', '');
  t.equal(missing.status, 400);
  const arrays = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: ['mallory'], password: [PASSWORDS.mallory] }) });
  t.equal(arrays.status, 400);
});

t.test('form login: 303 to the validated rd; onUnauthenticated: login round trip', async (t) => {
  const { gw, echo } = await gateway(t);
  const start = await call(`${gw.url}/admin/page?x=1`, { headers: { accept: 'text/html' } });
  t.equal(start.status, 302);
  const loginUrl = new URL(String(start.headers.location), gw.url);
  t.equal(loginUrl.pathname, '/.auth/login');
  const rd = loginUrl.searchParams.get('rd')!;
  const page = await call(loginUrl.href);
  t.match(page.body, `value="${rd}"`);
  const done = await formLogin(gw.url, { username: 'alice', password: PASSWORDS.alice, rd });
  t.equal(done.status, 303);
  t.equal(done.headers.location, '/admin/page?x=1');
  const back = await call(`${gw.url}/admin/page?x=1`, { headers: { cookie: `authgate_session=${cookieValue(done)!}` } });
  t.equal(back.status, 200);
  t.equal(back.json<{ headers: Record<string, string> }>().headers['x-auth-user'], 'alice');
  t.notOk(String(echo.received.at(-1)?.headers.cookie ?? '').includes('authgate_session'), 'the session cookie is not forwarded');
});

t.test('THREATS 27: a new session id at every login; the planted one is gone', async (t) => {
  const { gw } = await gateway(t);
  const planted = await signIn(gw.url, 'mallory');
  const store = gw.current().ctx.store;
  const keysBefore = await store.indexMembers('sessions:user:mallory');
  t.equal(keysBefore.length, 1);
  const victim = await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { cookie: `authgate_session=${planted}` });
  t.equal(victim.status, 200);
  const fresh = cookieValue(victim)!;
  t.not(fresh, planted);
  t.equal((await me(gw.url, planted)).status, 401, 'the planted id no longer works');
  t.equal(await store.get(`session:${keysBefore[0]}`), null, 'and is deleted from the store');
  t.equal((await me(gw.url, fresh)).json().user, 'alice');
  const again = await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { cookie: `authgate_session=${fresh}` });
  t.not(cookieValue(again), fresh, 're-login as the same user also rotates');
  t.equal((await me(gw.url, fresh)).status, 401);
});

t.test('THREATS 28: forged cookies are absent, cleared, and cost no store lookup', async (t) => {
  const { gw, echo } = await gateway(t);
  const good = await signIn(gw.url);
  const store = gw.current().ctx.store;
  let sessionReads = 0;
  const get = store.get.bind(store);
  store.get = async (key: string) => {
    if (key.startsWith('session:')) sessionReads++;
    return get(key);
  };
  t.teardown(() => { store.get = get; });
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const { SessionCookieSigner } = await import('../../src/sessions/cookie.js');
  const forged = [flip(good, 50), flip(good, good.length - 1), good.split('.')[0]!, new SessionCookieSigner(['changeme-changeme-changeme-changeme']).sign(good.split('.')[0]!), 'A'.repeat(4000)];
  const before = echo.received.length;
  for (const value of forged) {
    const r = await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${value}` } });
    t.equal(r.status, 401, `forged (${value.length})`);
    t.match(setCookieFor(r), /^authgate_session=;.*Expires=Thu, 01 Jan 1970/, 'cleared');
    const m = await me(gw.url, value);
    t.equal(m.status, 401);
    t.match(setCookieFor(m), /^authgate_session=;/);
  }
  t.equal(sessionReads, 0, 'no store lookup');
  t.equal(echo.received.length, before, 'nothing forwarded');
});

t.test('THREATS 31: CSRF on login, logout and session-authenticated unsafe requests', async (t) => {
  const { gw, echo } = await gateway(t);
  const cookie = await signIn(gw.url);
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = new URLSearchParams({ username: 'mallory', password: PASSWORDS.mallory }).toString();
  const cases: [string, Record<string, string>, string][] = [
    ['form, Origin evil', { ...form, origin: 'https://evil.test' }, body],
    ['form, no Origin, cross-site fetch metadata', { ...form, 'sec-fetch-site': 'cross-site' }, body],
    ['form, neither Origin nor Referer', form, body],
    ['form, Origin null', { ...form, origin: 'null' }, body],
    ['form, Referer evil', { ...form, referer: 'https://evil.test/page' }, body],
    ['text/plain JSON, Origin evil', { 'content-type': 'text/plain', origin: 'https://evil.test' }, JSON.stringify({ username: 'mallory', password: PASSWORDS.mallory })],
    ['text/plain JSON, no Origin', { 'content-type': 'text/plain' }, JSON.stringify({ username: 'mallory', password: PASSWORDS.mallory })],
    ['JSON, Origin evil', { 'content-type': 'application/json', origin: 'https://evil.test' }, JSON.stringify({ username: 'mallory', password: PASSWORDS.mallory })],
    ['JSON with a leading space, Origin evil', { 'content-type': ' application/json', origin: 'https://evil.test' }, JSON.stringify({ username: 'mallory', password: PASSWORDS.mallory })],
    ['multipart, Origin evil', { 'content-type': 'multipart/form-data; boundary=x', origin: 'https://evil.test' }, '--x--'],
  ];
  for (const [name, headers, b] of cases) {
    const r = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { ...headers, cookie: `authgate_session=${cookie}` }, body: b });
    t.equal(r.status, 403, `login: ${name}`);
    t.match(r.json(), { code: 'csrf' });
    t.equal(setCookieFor(r), undefined, 'no session minted');
  }
  t.equal((await me(gw.url, cookie)).json().user, 'alice', 'the victim is still alice');
  const sameSite = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { ...form, referer: `${gw.url}/.auth/login` }, body });
  t.equal(sameSite.status, 303, 'a same-origin Referer is enough when Origin is absent');

  for (const [name, headers] of [['Origin evil', { origin: 'https://evil.test' }], ['cross-site metadata', { 'sec-fetch-site': 'cross-site' }], ['form without Origin', form]] as const) {
    const r = await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { ...headers, cookie: `authgate_session=${cookie}` } });
    t.equal(r.status, 403, `logout: ${name}`);
  }
  t.equal((await me(gw.url, cookie)).status, 200, 'cross-site logout attempts changed nothing');

  const before = echo.received.length;
  for (const [name, headers] of [['Origin evil', { origin: 'https://evil.test' }], ['cross-site metadata', { 'sec-fetch-site': 'cross-site' }], ['text/plain, no Origin', { 'content-type': 'text/plain' }]] as const) {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const r = await call(`${gw.url}/app/users`, { method, headers: { ...headers, cookie: `authgate_session=${cookie}` }, body: '{"x":1}' });
      t.equal(r.status, 403, `${method} /app/users: ${name}`);
    }
  }
  t.equal(echo.received.length, before, 'not forwarded');
  const ok = await call(`${gw.url}/app/users`, { method: 'POST', headers: { origin: gw.url, cookie: `authgate_session=${cookie}` }, body: '{}' });
  t.equal(ok.status, 200, 'same-origin POST passes');
});

t.test('THREATS 32: logout ends the session; GET logout is refused', async (t) => {
  const { gw } = await gateway(t);
  const cookie = await signIn(gw.url);
  const get = await call(`${gw.url}/.auth/logout`, { headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'POST');
  t.equal((await me(gw.url, cookie)).status, 200);
  const out = await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(out.status, 204);
  t.match(setCookieFor(out), /^authgate_session=;.*Path=\//);
  t.equal((await me(gw.url, cookie)).status, 401, 'replay after logout');
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status, 401);

  const second = await signIn(gw.url);
  const formOut = await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: gw.url, cookie: `authgate_session=${second}` }, body: 'rd=%2F%2Fevil.test' });
  t.equal(formOut.status, 303);
  t.equal(formOut.headers.location, '/', 'THREATS 40: the logout rd is validated too');
  t.equal((await me(gw.url, second)).status, 401);
  const third = await signIn(gw.url);
  const formOut2 = await call(`${gw.url}/.auth/logout?rd=/bye`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: gw.url, cookie: `authgate_session=${third}` }, body: '' });
  t.equal(formOut2.headers.location, '/bye');
  const json = await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { 'content-type': 'application/json', origin: gw.url }, body: '{}' });
  t.equal(json.status, 204, 'logout without a session is harmless');

  // $RT from /jwt/token dies with the logout too.
  const pair = await call(`${gw.url}/.auth/jwt/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: PASSWORDS.alice }) });
  t.equal(pair.status, 200);
  const { refresh } = pair.json<{ refresh: string }>();
  const fourth = await signIn(gw.url);
  t.equal((await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${fourth}` } })).status, 204);
  const refreshed = await call(`${gw.url}/.auth/jwt/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh }) });
  t.equal(refreshed.status, 401, 'the refresh token is revoked by the logout');
});

t.test('THREATS 35: an MFA-required user gets only a pending session; a pre-MFA session is no identity', async (t) => {
  const { gw, echo } = await gateway(t);
  const json = await jsonLogin(gw.url, 'mfa-user', PASSWORDS.mfa);
  t.equal(json.status, 200);
  t.same(json.json(), { mfaRequired: true, methods: ['enroll'] });
  t.equal((await me(gw.url, cookieValue(json))).status, 401, 'the pending session is no identity');
  const form = await formLogin(gw.url, { username: 'mfa-user', password: PASSWORDS.mfa });
  t.equal(form.status, 303);
  t.equal(form.headers.location, '/.auth/mfa?rd=%2F');

  const { service, release } = acquireSessionService(gw.current().ctx);
  t.teardown(release);
  const pending = await service.create({ user: 'alice', groups: ['admin'], method: 'session', amr: ['pwd'], mfa: false, pendingMfa: { methods: ['totp'] } });
  const before = echo.received.length;
  t.equal((await me(gw.url, pending.cookie)).status, 401);
  const page = await call(`${gw.url}/admin/x`, { headers: { accept: 'text/html', cookie: `authgate_session=${pending.cookie}` } });
  t.equal(page.status, 302);
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${pending.cookie}` } })).status, 401);
  t.equal(echo.received.length, before, 'never forwarded');
});

t.test('THREATS 37-41: every rd trick lands on /', async (t) => {
  const { gw } = await gateway(t, { login: { allowedRedirects: ['https://*.gw.test'] } });
  const tricks = ['https://evil.test', '//evil.test', '/\\evil.test', '\\/evil.test', '/\\/evil.test', 'https:evil.test', 'http:\\\\evil.test', 'http\\://evil.test',
    'javascript:alert(1)', 'data:text/html,x', '///evil.test', '%2F%2Fevil.test', '/%2F%2Fevil.test', '/%5Cevil.test', '/%09/evil.test', '/%0a/evil.test',
    '/%0d/evil.test', '%20//evil.test', '/%E3%80%82evil.test', '%252F%252Fevil.test', 'https://evilgw.test', 'https://gw.test.evil.test', 'https://gw.test@evil.test',
    'https://evil.test\\@gw.test', 'https://evil.test#.gw.test', 'https://gw.test:443.evil.test', 'https://GW.TEST.evil.test'];
  let n = 0;
  for (const rd of tricks) {
    const r = await formLogin(gw.url, { username: 'alice', password: PASSWORDS.alice, rd });
    t.equal(r.status, 303, rd);
    t.equal(r.headers.location, '/', `rd=${rd}`);
    n++;
  }
  t.equal(n, tricks.length);
  const viaQuery = await call(`${gw.url}/.auth/login?rd=${encodeURIComponent('//evil.test')}`);
  t.match(viaQuery.body, 'name="rd" value="/"');
  const hostHeader = await call(`${gw.url}/admin/x`, { headers: { accept: 'text/html', host: 'evil.test', 'x-forwarded-host': 'evil.test' } });
  const loc = String(hostHeader.headers.location ?? '');
  const rd = new URL(loc, gw.url).searchParams.get('rd') ?? '';
  const landed = await formLogin(gw.url, { username: 'alice', password: PASSWORDS.alice, rd });
  t.notMatch(String(landed.headers.location), /evil/, 'THREATS 41: a Host-derived rd never leaves the gateway');
});
