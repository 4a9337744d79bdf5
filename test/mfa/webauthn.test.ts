// Passkeys and security keys through a running gateway with a software authenticator (SPEC 6
// /mfa/webauthn/*; issue 11): registration and authentication ceremonies, rpId/origin from
// publicUrl only, challenges single use, the sign counter, credentials listed (no key material)
// and removed, password-less sign-in with a user-verified discoverable passkey, and lockout.
import t, { type Test } from 'tap';
import { SoftAuthenticator } from '../helpers/webauthn.js';
import { call, cookieValue, freePort, json, login, passwordSession, startMfaGateway } from './_mfa.js';

async function gateway(t: Test, mfa: Record<string, unknown> = {}) {
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const started = await startMfaGateway(t, { server: { listen: { host: '127.0.0.1', port }, publicUrl }, mfa: { webauthn: { rpName: 'authgate test' }, ...mfa }, login: { lockout: { maxFailures: 4 } } });
  return { ...started, publicUrl };
}

const me = (base: string, cookie: string) => call(`${base}/.auth/me`, { headers: { cookie: `authgate_session=${cookie}` } });

async function register(base: string, cookie: string, auth: SoftAuthenticator, name = 'Test key') {
  const options = await call(`${base}/.auth/mfa/webauthn/register/options`, json(cookie, {}, { host: 'evil.test', 'x-forwarded-host': 'evil.test' }));
  if (options.status !== 200) throw new Error(`options ${options.status} ${options.body}`);
  const o = options.json<{ challenge: string; user: { id: string }; rp: { id: string } }>();
  const verify = await call(`${base}/.auth/mfa/webauthn/register/verify`, json(cookie, { response: auth.register(o), name }));
  return { options: o, verify };
}

async function assertion(base: string, cookie: string | undefined, auth: SoftAuthenticator, over: { origin?: string; counter?: number } = {}) {
  const options = await call(`${base}/.auth/mfa/webauthn/authenticate/options`, json(cookie, {}));
  const o = options.json<{ challenge: string; allowCredentials?: { id: string }[]; userVerification?: string; rpId: string }>();
  const response = auth.authenticate(o, over);
  const verify = await call(`${base}/.auth/mfa/webauthn/authenticate/verify`, json(cookie, { response, rd: '/app/' }));
  return { options: o, response, verify };
}

t.test('register a security key, then use it as the second factor', async (t) => {
  const { gw, publicUrl } = await gateway(t);
  const auth = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost' });
  const cookie = await passwordSession(gw.url, 'alice');
  const { options, verify } = await register(gw.url, cookie, auth);
  t.equal(options.rp.id, 'localhost', 'rpId from publicUrl, never from Host or X-Forwarded-Host');
  t.equal(verify.status, 201);
  t.match(verify.json(), { credential: { id: auth.id, name: 'Test key', lastUsedAt: null } });
  const upgraded = cookieValue(verify);
  t.ok(upgraded !== undefined && upgraded !== cookie, 'the first factor, just proven, upgrades the session (new id)');
  t.equal((await me(gw.url, cookie)).status, 401, 'the password-only session is gone');
  t.match((await me(gw.url, upgraded!)).json(), { mfa: true });
  const list = await call(`${gw.url}/.auth/mfa/webauthn/credentials`, { headers: { cookie: `authgate_session=${upgraded}` } });
  t.equal(list.status, 200);
  const creds = list.json<{ credentials: Record<string, unknown>[] }>().credentials;
  t.equal(creds.length, 1);
  t.same(Object.keys(creds[0]!).sort(), ['createdAt', 'id', 'lastUsedAt', 'name'], 'never key material');
  t.notOk(JSON.stringify(await gw.current().ctx.store.get(`mfa:webauthn:user:alice`)).includes('publicKey'));

  const pw = await login(gw.url, 'alice');
  t.same(pw.json(), { mfaRequired: true, methods: ['webauthn'] });
  const pending = cookieValue(pw)!;
  const wrongOrigin = await assertion(gw.url, pending, auth, { origin: 'http://evil.test' });
  t.equal(wrongOrigin.verify.status, 401, 'an assertion for another origin is refused');
  const good = await assertion(gw.url, pending, auth);
  t.same(good.options.allowCredentials?.map((c) => c.id), [auth.id]);
  t.equal(good.verify.status, 200);
  t.match(good.verify.json(), { user: { user: 'alice', mfa: true }, redirect: '/app/' });
  const signedIn = cookieValue(good.verify)!;
  t.not(signedIn, pending);
  t.equal((await call(`${gw.url}/admin/x`, { headers: { cookie: `authgate_session=${signedIn}` } })).status, 200);

  // The challenge is single use: the same assertion again (from a new pending login).
  const pending2 = cookieValue(await login(gw.url, 'alice'))!;
  const replay = await call(`${gw.url}/.auth/mfa/webauthn/authenticate/verify`, json(pending2, { response: good.response }));
  t.equal(replay.status, 401, 'a replayed assertion (spent challenge) is refused');

  // The counter must move forward.
  const backwards = await assertion(gw.url, pending2, auth, { counter: 1 });
  t.equal(backwards.verify.status, 401, 'a counter that goes backwards is refused (cloned key)');
  const forward = await assertion(gw.url, pending2, auth, { counter: 10 });
  t.equal(forward.verify.status, 200);

  const listed = (await call(`${gw.url}/.auth/mfa/webauthn/credentials`, { headers: { cookie: `authgate_session=${cookieValue(forward.verify)!}` } })).json<{ credentials: { lastUsedAt: string | null }[] }>();
  t.ok(listed.credentials[0]!.lastUsedAt !== null, 'last use recorded');

  const del = await call(`${gw.url}/.auth/mfa/webauthn/credentials/${encodeURIComponent(auth.id)}`, { method: 'DELETE', headers: { cookie: `authgate_session=${cookieValue(forward.verify)!}` } });
  t.equal(del.status, 204);
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'mfa.removed' && l.user === 'alice'));
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'mfa.enrolled' && l.method === 'webauthn'));
  t.equal((await login(gw.url, 'alice')).status, 200);
  t.notOk((await login(gw.url, 'alice')).json<{ mfaRequired?: boolean }>().mfaRequired, 'no factor left');
});

t.test('a synced passkey whose counter stays 0 is fine', async (t) => {
  const { gw, publicUrl } = await gateway(t);
  const auth = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost', counterStep: 0 });
  await register(gw.url, await passwordSession(gw.url, 'bob'), auth);
  for (let i = 0; i < 2; i++) {
    const pending = cookieValue(await login(gw.url, 'bob'))!;
    t.equal((await assertion(gw.url, pending, auth)).verify.status, 200, `sign-in ${i + 1} with counter 0`);
  }
});

t.test('password-less sign-in with a user-verified discoverable passkey', async (t) => {
  const { gw, publicUrl } = await gateway(t, { passkeyLogin: true });
  const auth = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost' });
  const reg = await register(gw.url, await passwordSession(gw.url, 'carol'), auth, 'Phone');
  t.equal(reg.verify.status, 201);
  const loginPage = await call(`${gw.url}/.auth/login`);
  t.match(loginPage.body, /Sign in with a passkey/);
  const page = await call(`${gw.url}/.auth/mfa`);
  t.equal(page.status, 200);
  t.match(String(page.headers['content-security-policy']), /script-src 'sha256-[^']+'/);

  const signIn = await assertion(gw.url, undefined, auth);
  t.equal(signIn.options.allowCredentials?.length ?? 0, 0, 'discoverable: no allow list');
  t.equal(signIn.options.userVerification, 'required');
  t.equal(signIn.verify.status, 200);
  const cookie = cookieValue(signIn.verify)!;
  const who = (await me(gw.url, cookie)).json<{ user: string; mfa: boolean }>();
  t.same([who.user, who.mfa], ['carol', true]);
  const jwtAmr = (await call(`${gw.url}/admin/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status;
  t.equal(jwtAmr, 200, 'counts as two factors for require.mfa');
  t.ok(gw.logs.some((l) => l.audit === true && l.event === 'login.success' && l.method === 'passkey' && l.user === 'carol'), 'login.success audited');

  // Without user verification it is one factor only: refused as a sign-in.
  const noUv = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost', userVerified: false });
  await register(gw.url, await passwordSession(gw.url, 'bob'), noUv);
  t.equal((await assertion(gw.url, undefined, noUv)).verify.status, 401, 'no UV: no password-less sign-in');

  // A credential the authenticator cannot discover is refused for password-less sign-in.
  const notResident = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost', residentKey: false });
  const aliceSession = await passwordSession(gw.url, 'alice');
  await register(gw.url, aliceSession, notResident);
  t.equal((await assertion(gw.url, undefined, notResident)).verify.status, 401, 'not discoverable');
});

t.test('password-less sign-in is off unless configured; unknown credentials count in the lockout', async (t) => {
  const { gw, publicUrl } = await gateway(t);
  t.equal((await call(`${gw.url}/.auth/mfa/webauthn/authenticate/options`, json(undefined, {}))).status, 401, 'no session, no passkeyLogin');
  const page = await call(`${gw.url}/.auth/mfa`);
  t.equal(page.status, 303);
  const { gw: gw2 } = await gateway(t, { passkeyLogin: true });
  const stranger = new SoftAuthenticator({ origin: publicUrl, rpId: 'localhost' });
  stranger.userHandle = 'AAAA';
  let last = 0;
  for (let i = 0; i < 5; i++) last = (await assertion(gw2.url, undefined, stranger)).verify.status;
  t.equal(last, 429, 'an unknown credential is locked out after maxFailures');
  let options = 0;
  for (let i = 0; i < 40; i++) options = (await call(`${gw2.url}/.auth/mfa/webauthn/authenticate/options`, json(undefined, {}))).status;
  t.equal(options, 429, 'anonymous passkey options (stored challenges) are bounded per client');
});
