// The second step through a running gateway (SPEC 6 /login, /mfa/*, /jwt/token, /token; issue 11;
// THREATS 35, 54, 55, 59): pending sessions are never an identity, completion issues a new
// session id with mfa and amr, the enrolment code is spent, step-up upgrades a session, the API
// path takes `otp`, and wrong codes count in the login lockout.
import t from 'tap';
import { awayFromStepEdge, call, cookieValue, enrolTotp, json, jwtPayload, login, passwordSession, PW, startMfaGateway, totp } from './_mfa.js';

const me = (base: string, cookie: string) => call(`${base}/.auth/me`, { headers: { cookie: `authgate_session=${cookie}` } });
const get = (base: string, path: string, cookie: string, headers: Record<string, string> = {}) => call(`${base}${path}`, { headers: { cookie: `authgate_session=${cookie}`, ...headers } });

t.test('enrol, then sign in with password + TOTP; the pending session is never an identity', async (t) => {
  const { gw, echo } = await startMfaGateway(t);
  const first = await passwordSession(gw.url, 'bob');
  const enrolment = await call(`${gw.url}/.auth/mfa/totp/enroll`, json(first, {}));
  t.equal(enrolment.status, 200);
  const e = enrolment.json<{ secret: string; otpauthUrl: string; qrSvg: string }>();
  t.match(e.secret, /^[A-Z2-7]{32}$/);
  t.match(e.otpauthUrl, /^otpauth:\/\/totp\/authgate-test:bob\?/);
  t.match(e.qrSvg, /^<svg[\s\S]*<\/svg>\s*$/);
  t.notMatch(e.qrSvg, /https?:\/\/(?!www\.w3\.org)/, 'no external service in the QR code');

  const bad = await call(`${gw.url}/.auth/mfa/totp/confirm`, json(first, { code: '000000' }));
  t.equal(bad.status, 401, 'a wrong confirmation code');
  await awayFromStepEdge();
  const confirmCode = await totp(e.secret);
  const ok = await call(`${gw.url}/.auth/mfa/totp/confirm`, json(first, { code: confirmCode }));
  t.equal(ok.status, 200);
  const codes = ok.json<{ recoveryCodes: string[]; user: { mfa: boolean } }>().recoveryCodes;
  t.equal(codes.length, 10);
  t.equal(ok.json<{ user: { mfa: boolean } }>().user.mfa, true, 'confirming proves the factor: the session is upgraded');
  const upgraded = cookieValue(ok)!;
  t.not(upgraded, first, 'a new session id');
  t.equal((await me(gw.url, first)).status, 401, 'the old session id is gone');

  // Sign out; sign in again: the second step is due.
  await call(`${gw.url}/.auth/logout`, json(upgraded, {}));
  const pw = await login(gw.url, 'bob');
  t.equal(pw.status, 200);
  t.same(pw.json(), { mfaRequired: true, methods: ['totp', 'recovery'] });
  const pending = cookieValue(pw)!;
  t.ok(pending, 'a pending session cookie');
  t.equal((await me(gw.url, pending)).status, 401, 'pending: /me refuses');
  const proxied = await get(gw.url, '/app/x', pending);
  t.equal(proxied.status, 401, 'pending: no identity at a route');
  t.equal(echo.received.length, 0, 'the upstream received nothing');
  const browser = await get(gw.url, '/admin/x', pending, { accept: 'text/html' });
  t.equal(browser.status, 302);

  // The enrolment code was consumed: it is not the first login code.
  const replay = await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: confirmCode }));
  t.equal(replay.status, 401, 'enrolment code replayed at login: refused');
  t.match(replay.json(), { code: 'invalid_credentials' });

  const next = await totp(e.secret, Math.floor(Date.now() / 1000) + 30); // the next step, inside the window
  const done = await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: next }));
  t.equal(done.status, 200);
  const signedIn = cookieValue(done)!;
  t.not(signedIn, pending, 'completion issues a new session id (fixation)');
  t.equal((await me(gw.url, pending)).status, 401, 'the pending id is gone');
  const who = (await me(gw.url, signedIn)).json<{ user: string; mfa: boolean; authTime: number }>();
  t.equal(who.user, 'bob');
  t.equal(who.mfa, true);
  const admin = await get(gw.url, '/admin/x', signedIn);
  t.equal(admin.status, 200, 'require.mfa is met');
  t.equal(echo.received.at(-1)?.headers['x-auth-mfa'], 'true');

  // Replays of the completed code, from another login.
  const again = cookieValue(await login(gw.url, 'bob'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/verify`, json(again, { code: next }))).status, 401, 'a used code is refused from another session');

  // A recovery code completes the factor once.
  const rc = await call(`${gw.url}/.auth/mfa/verify`, json(again, { code: codes[0] }));
  t.equal(rc.status, 200);
  t.match(rc.json(), { user: { user: 'bob', mfa: true } });
  const again2 = cookieValue(await login(gw.url, 'bob'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/verify`, json(again2, { code: codes[0] }))).status, 401, 'a recovery code works once');

  // Form flow: 303 to the MFA page, then to rd.
  const form = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: gw.url }, body: new URLSearchParams({ username: 'bob', password: PW.bob!, rd: '/admin/page' }).toString() });
  t.equal(form.status, 303);
  t.equal(form.headers.location, '/.auth/mfa?rd=%2Fadmin%2Fpage');
  const formPending = cookieValue(form)!;
  const page = await get(gw.url, '/.auth/mfa?rd=%2Fadmin%2Fpage', formPending);
  t.equal(page.status, 200);
  t.match(page.body, /autocomplete="one-time-code"/);
  t.match(page.body, /Use a recovery code/);
  t.notMatch(page.body, /email code/, 'no email method without mfa.email');
  const formDone = await call(`${gw.url}/.auth/mfa/verify`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: gw.url, cookie: `authgate_session=${formPending}` }, body: new URLSearchParams({ code: codes[1]!, rd: '/admin/page' }).toString() });
  t.equal(formDone.status, 303);
  t.equal(formDone.headers.location, '/admin/page');

  const cross = await call(`${gw.url}/.auth/mfa/verify`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.test', cookie: `authgate_session=${formPending}` }, body: 'code=123456' });
  t.equal(cross.status, 403, 'a cross-site post is refused');

  const logs = gw.rawLogs.join('\n');
  for (const secret of [e.secret, confirmCode, next, codes[0]!, codes[1]!, PW.bob!]) t.notOk(logs.includes(secret), 'no secret, code or recovery code in any log line');
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'mfa.enrolled' && l.user === 'bob'), 'mfa.enrolled audited');
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'mfa.failure' && l.user === 'bob'), 'mfa.failure audited');
});

t.test('wrong codes count in the login lockout: then even the right code gets 429', async (t) => {
  const { gw } = await startMfaGateway(t);
  const { secret } = await enrolTotp(gw.url, await passwordSession(gw.url, 'carol'));
  let pending = cookieValue(await login(gw.url, 'carol'))!;
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: '000000' }))).status, 401);
  // A new login does not reset the code counter (THREATS 55): the account counts.
  pending = cookieValue(await login(gw.url, 'carol'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: 'zzzzz-zzzzz' }))).status, 401, 'a wrong recovery code counts too');
  await awayFromStepEdge();
  const right = await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: await totp(secret, Math.floor(Date.now() / 1000) + 30) }));
  t.equal(right.status, 429);
  t.match(right.json(), { code: 'locked' });
  t.ok(Number(right.headers['retry-after']) > 0);
  t.equal((await me(gw.url, pending)).status, 401, 'still no identity');
});

t.test('concurrent wrong codes: at most maxFailures are evaluated, the rest and then the right code get 429', async (t) => {
  const { gw } = await startMfaGateway(t);
  const { secret } = await enrolTotp(gw.url, await passwordSession(gw.url, 'carol'));
  const pending = cookieValue(await login(gw.url, 'carol'))!;
  const answers = await Promise.all(Array.from({ length: 20 }, () => call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: '000000' }))));
  const wrong = answers.filter((a) => a.status === 401).length;
  t.ok(wrong <= 4, `at most maxFailures (4) guesses were evaluated, got ${wrong}`);
  t.equal(answers.filter((a) => a.status === 429).length, 20 - wrong, 'every other guess was refused unevaluated');
  t.equal(gw.logs.filter((l) => l.audit === true && l.event === 'mfa.failure' && l.user === 'carol' && l.reason === 'invalid_credentials').length, wrong, 'one invalid_credentials failure per evaluated guess');
  await awayFromStepEdge();
  const right = await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: await totp(secret, Math.floor(Date.now() / 1000) + 30) }));
  t.equal(right.status, 429, 'the right code is locked out too');
  t.equal((await me(gw.url, pending)).status, 401, 'still no identity');
});

t.test('step-up: require.mfa for API clients and browsers; passing it upgrades the session', async (t) => {
  const { gw } = await startMfaGateway(t);
  const plain = await passwordSession(gw.url, 'alice');
  const api = await get(gw.url, '/admin/x', plain);
  t.equal(api.status, 403);
  t.match(api.json(), { code: 'mfa_required' });
  const browser = await get(gw.url, '/admin/x?y=1', plain, { accept: 'text/html' });
  t.equal(browser.status, 302);
  t.equal(browser.headers.location, '/.auth/mfa?rd=%2Fadmin%2Fx%3Fy%3D1');
  const noFactor = await get(gw.url, '/.auth/mfa?rd=%2Fadmin%2Fx', plain);
  t.equal(noFactor.status, 303, 'a step-up without any factor yet: the enrolment page');
  t.equal(noFactor.headers.location, '/.auth/mfa/totp?rd=%2Fadmin%2Fx');

  // Another session enrols; this older password-only session steps up with a code.
  const { secret } = await enrolTotp(gw.url, await passwordSession(gw.url, 'alice'));
  const before = (await me(gw.url, plain)).json<{ authTime: number; mfa: boolean }>();
  t.equal(before.mfa, false);
  const stepPage = await get(gw.url, '/.auth/mfa?rd=%2Fadmin%2Fx', plain);
  t.match(stepPage.body, /Confirm it is you/);
  await awayFromStepEdge();
  const up = await call(`${gw.url}/.auth/mfa/verify`, json(plain, { code: await totp(secret, Math.floor(Date.now() / 1000) + 30) }));
  t.equal(up.status, 200);
  const upgraded = cookieValue(up)!;
  t.not(upgraded, plain);
  const after = (await me(gw.url, upgraded)).json<{ authTime: number; mfa: boolean }>();
  t.equal(after.mfa, true);
  t.ok(after.authTime >= before.authTime, 'a step-up refreshes the sign-in time');
  t.equal((await get(gw.url, '/admin/x', upgraded)).status, 200);
});

t.test('API path: /jwt/token and /token take otp', async (t) => {
  const { gw } = await startMfaGateway(t);
  const { secret, recoveryCodes } = await enrolTotp(gw.url, await passwordSession(gw.url, 'alice'));
  const noOtp = await call(`${gw.url}/.auth/jwt/token`, json(undefined, { username: 'alice', password: PW.alice }));
  t.equal(noOtp.status, 401);
  t.match(noOtp.json(), { code: 'mfa_required', status: 401 });
  t.match(noOtp.headers['content-type'], /application\/problem\+json/);
  const wrong = await call(`${gw.url}/.auth/jwt/token`, json(undefined, { username: 'alice', password: PW.alice, otp: '000000' }));
  t.equal(wrong.status, 401);
  t.match(wrong.json(), { code: 'invalid_credentials' });
  await awayFromStepEdge();
  const good = await call(`${gw.url}/.auth/jwt/token`, json(undefined, { username: 'alice', password: PW.alice, otp: await totp(secret, Math.floor(Date.now() / 1000) + 30) }));
  t.equal(good.status, 200);
  const access = good.json<{ access: string }>().access;
  const claims = jwtPayload(access);
  t.same(claims.amr, ['pwd', 'otp']);
  t.equal(claims.mfa, true);
  const admin = await call(`${gw.url}/admin/x`, { headers: { authorization: `Bearer ${access}` } });
  t.equal(admin.status, 200, 'the JWT meets require.mfa');
  const inQuery = await call(`${gw.url}/.auth/jwt/token?otp=123456`, json(undefined, { username: 'alice', password: PW.alice }));
  t.equal(inQuery.status, 400, 'an otp in the query string is refused');

  const tokenNoOtp = await call(`${gw.url}/.auth/token`, json(undefined, { username: 'alice', password: PW.alice }));
  t.equal(tokenNoOtp.status, 401);
  t.match(tokenNoOtp.json(), { code: 'mfa_required' });
  const tokenRecovery = await call(`${gw.url}/.auth/token`, json(undefined, { username: 'alice', password: PW.alice, otp: recoveryCodes[0] }));
  t.equal(tokenRecovery.status, 200);
  t.match(tokenRecovery.json(), { token: /^agt_/ });
  const spent = await call(`${gw.url}/.auth/token`, json(undefined, { username: 'alice', password: PW.alice, otp: recoveryCodes[0] }));
  t.equal(spent.status, 401, 'a recovery code works once on the API path too');
  const logs = gw.rawLogs.join('\n');
  for (const s of [secret, recoveryCodes[0]!, access]) t.notOk(logs.includes(s), 'nothing secret in the logs');
});

t.test('mfa.required without a factor: enrolment is the second step', async (t) => {
  const { gw } = await startMfaGateway(t);
  const pw = await login(gw.url, 'nomail');
  t.same(pw.json(), { mfaRequired: true, methods: ['enroll'] });
  const pending = cookieValue(pw)!;
  t.equal((await me(gw.url, pending)).status, 401);
  const page = await get(gw.url, '/.auth/mfa', pending);
  t.equal(page.status, 303);
  t.equal(page.headers.location, '/.auth/mfa/totp?rd=%2F');
  t.equal((await call(`${gw.url}/.auth/mfa/webauthn/register/options`, json(pending, {}))).status, 403, 'only TOTP enrolment from a pending session');
  const { cookie } = await enrolTotp(gw.url, pending);
  const who = (await me(gw.url, cookie)).json<{ user: string; mfa: boolean }>();
  t.same([who.user, who.mfa], ['nomail', true]);
  t.equal((await call(`${gw.url}/.auth/mfa/totp/enroll`, json(pending, {}))).status, 401, 'the pending session is gone');
});

t.test('changing factors needs a full, recent sign-in; status never shows a secret', async (t) => {
  const { gw } = await startMfaGateway(t);
  const { cookie, secret } = await enrolTotp(gw.url, await passwordSession(gw.url, 'alice'));
  const factors = await get(gw.url, '/.auth/mfa/factors', cookie);
  t.equal(factors.status, 200);
  t.match(factors.json(), { totp: { enabled: true }, recoveryCodesLeft: 10, webauthn: [] });
  t.notOk(factors.body.includes(secret) || factors.body.includes('otpauth'), 'no secret after enrolment (THREATS 59)');
  t.notOk((await me(gw.url, cookie)).body.includes(secret));
  const regen = await call(`${gw.url}/.auth/mfa/recovery/regenerate`, json(cookie, {}));
  t.equal(regen.status, 200);
  t.equal(regen.json<{ recoveryCodes: string[] }>().recoveryCodes.length, 10);
  const pending = cookieValue(await login(gw.url, 'alice'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/totp/enroll`, json(pending, {}))).status, 403, 're-enrolment from a pending session: refused');
  t.equal((await call(`${gw.url}/.auth/mfa/recovery/regenerate`, json(pending, {}))).status, 403);
  const del = await call(`${gw.url}/.auth/mfa/totp`, { method: 'DELETE', headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(del.status, 204);
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'mfa.removed' && l.user === 'alice'));
  t.equal((await login(gw.url, 'alice')).json<{ user?: unknown }>().user !== undefined, true, 'without factors the password signs in again');
});
