// Every bad callback (issue 10): a 4xx page, no session afterwards, and the flow spent. Against a
// real OpenID Provider; forged ID tokens are swapped into its token answers.
import { generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import t, { type Test } from 'tap';
import { browse, CookieJar } from '../helpers/oidc.js';
import { oidcRig, upToCallback, type OidcRig } from './_setup.js';

/** No session: no cookie, the protected URL sends the browser to sign in, no oidc.login audit line. */
async function assertNoSession(t: Test, rig: OidcRig, jar: CookieJar): Promise<void> {
  t.notOk(jar.get('authgate_session'), 'no session cookie');
  const app = await browse(jar, `${rig.gw.url}/app/x`);
  t.equal(app.status, 302, 'the protected URL still asks to sign in');
  t.notOk(rig.gw.logs.some((l) => l.event === 'oidc.login'), 'no oidc.login audit event');
}

function assertPage(t: Test, hop: { status: number; body: string; headers: Headers }, status: number, text: RegExp): void {
  t.equal(hop.status, status, `status ${status}`);
  t.match(hop.headers.get('content-type') ?? '', /text\/html/);
  t.match(hop.body, text);
  t.notMatch(hop.body, /gateway-secret|eyJ[A-Za-z0-9_-]{10}/, 'no secret or token on the page');
}

t.test('missing state', async (t) => {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  const u = new URL(callback);
  u.searchParams.delete('state');
  assertPage(t, await browse(jar, u.toString()), 400, /Sign-in expired, try again/);
  await assertNoSession(t, rig, jar);
});

t.test('tampered state', async (t) => {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  const u = new URL(callback);
  u.searchParams.set('state', `${u.searchParams.get('state')}x`);
  assertPage(t, await browse(jar, u.toString()), 400, /Sign-in expired, try again/);
  await assertNoSession(t, rig, jar);
});

t.test('foreign state: a callback delivered to another browser (login CSRF) is refused and spends the flow', async (t) => {
  const rig = await oidcRig(t);
  const { callback } = await upToCallback(rig, 'mallory');
  const victim = new CookieJar();
  await browse(victim, `${rig.gw.url}/.auth/oidc/corp/login`); // the victim has a flow cookie of its own
  assertPage(t, await browse(victim, callback), 400, /started in another browser/);
  await assertNoSession(t, rig, victim);
});

t.test('a used state cannot be used again, even by the browser that started it', async (t) => {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  const first = await browse(jar, callback);
  t.equal(first.status, 302);
  t.equal(first.location, `${rig.gw.url}/app/x`);
  // Signed in: a reload of the callback just goes on.
  const again = await browse(jar, callback);
  t.equal(again.status, 302, 'a callback that finds a session already just redirects');
  // Without the session, the spent state is refused.
  const other = new CookieJar();
  other.cookies.set('authgate_oidc_flow;/.auth/oidc/', { value: jar.get('authgate_oidc_flow') ?? 'x'.repeat(43), path: '/.auth/oidc/' });
  assertPage(t, await browse(other, callback), 400, /Sign-in expired/);
  t.notOk(other.get('authgate_session'));
});

t.test('a code from another flow (or replayed) is refused by the token endpoint: no session', async (t) => {
  const rig = await oidcRig(t);
  const jar = new CookieJar();
  const one = await upToCallback(rig, 'alice', jar);
  const two = await upToCallback(rig, 'alice', jar);
  const mixed = new URL(two.callback);
  mixed.searchParams.set('code', new URL(one.callback).searchParams.get('code') ?? '');
  assertPage(t, await browse(jar, mixed.toString()), 400, /already used or has expired/);
  await assertNoSession(t, rig, jar);
  assertNothingLogged(t, rig, mixed.toString());
});

t.test('error=access_denied from the provider: 403 page, no session', async (t) => {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  const u = new URL(callback);
  u.searchParams.delete('code');
  u.searchParams.set('error', 'access_denied');
  assertPage(t, await browse(jar, u.toString()), 403, /cancelled or refused/);
  await assertNoSession(t, rig, jar);
});

t.test('wrong iss response parameter (RFC 9207): no session', async (t) => {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  const u = new URL(callback);
  t.ok(u.searchParams.get('iss'), 'the provider sends iss');
  u.searchParams.set('iss', 'http://127.0.0.1:1/evil');
  assertPage(t, await browse(jar, u.toString()), 400, /could not be verified/);
  await assertNoSession(t, rig, jar);
});

async function forged(t: Test, forge: (rig: OidcRig, idToken: string) => Promise<string>, text: RegExp, status: number) {
  const rig = await oidcRig(t);
  const { jar, callback } = await upToCallback(rig, 'alice');
  rig.op.tamperToken = async (json) => ({ ...json, id_token: await forge(rig, json.id_token as string) });
  assertPage(t, await browse(jar, callback), status, text);
  await assertNoSession(t, rig, jar);
  assertNothingLogged(t, rig, callback);
}

/** THREATS 97: the code and state of a callback never reach a log line, at debug level. */
function assertNothingLogged(t: Test, rig: OidcRig, callback: string): void {
  const u = new URL(callback);
  for (const name of ['code', 'state']) {
    const value = u.searchParams.get(name) ?? '';
    t.ok(value.length > 8 && !rig.gw.rawLogs.some((l) => l.includes(value)), `the ${name} is not logged`);
  }
}

t.test('ID token signed by another key under the provider kid', (t) =>
  forged(t, async (_rig, idt) => {
    const { privateKey } = await generateKeyPair('RS256');
    return new SignJWT(decodeJwt(idt)).setProtectedHeader({ alg: 'RS256', kid: decodeProtectedHeader(idt).kid as string }).sign(privateKey);
  }, /could not be verified/, 403),
);

t.test('ID token with alg none', (t) =>
  forged(t, async (_rig, idt) => {
    const [, payload] = idt.split('.');
    return `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`;
  }, /could not be verified/, 400),
);

t.test('ID token HS256-signed with the client secret (never HS* here)', (t) =>
  forged(t, async (_rig, idt) => new SignJWT(decodeJwt(idt)).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('gateway-secret')), /could not be verified/, 400),
);

t.test('ID token with a wrong nonce, correctly signed', (t) =>
  forged(t, async (rig, idt) => rig.op.sign({ ...decodeJwt(idt), nonce: 'other' }), /could not be verified/, 400),
);

t.test('ID token for another audience, correctly signed', (t) =>
  forged(t, async (rig, idt) => rig.op.sign({ ...decodeJwt(idt), aud: 'someone-else' }), /could not be verified/, 400),
);

t.test('ID token from another issuer, correctly signed', (t) =>
  forged(t, async (rig, idt) => rig.op.sign({ ...decodeJwt(idt), iss: 'http://127.0.0.1:1' }), /could not be verified/, 400),
);

t.test('expired ID token, correctly signed', (t) =>
  forged(t, async (rig, idt) => rig.op.sign({ ...decodeJwt(idt), iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }), /could not be verified/, 400),
);

t.test('an unknown provider name is a 404 problem', async (t) => {
  const rig = await oidcRig(t);
  const res = await fetch(`${rig.gw.url}/.auth/oidc/nope/callback?state=x&code=y`);
  t.equal(res.status, 404);
  t.match(res.headers.get('content-type') ?? '', /problem\+json/);
});
