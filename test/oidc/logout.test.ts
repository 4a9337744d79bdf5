// Logout of OIDC sessions (issue 10): OIDC Back-Channel Logout 1.0 — from the real provider and
// with crafted logout tokens, every bad one refused — and RP-initiated logout through /logout.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { waitFor } from '../helpers/gateway.js';
import { browse, CookieJar } from '../helpers/oidc.js';
import { oidcRig, oidcSignIn, type OidcRig } from './_setup.js';

const EVENTS = { 'http://schemas.openid.net/event/backchannel-logout': {} };

async function signedIn(rig: OidcRig, jar: CookieJar): Promise<boolean> {
  return (await browse(jar, `${rig.gw.url}/app/x`)).status === 200;
}

function logoutToken(rig: OidcRig, claims: Record<string, unknown>, header: Record<string, unknown> = { typ: 'logout+jwt' }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return rig.op.sign({ iss: rig.op.issuer, aud: 'gateway', iat: now, exp: now + 120, jti: randomUUID(), events: EVENTS, ...claims }, header);
}

async function postLogout(rig: OidcRig, token: string): Promise<Response> {
  return fetch(`${rig.gw.url}/.auth/oidc/corp/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }) });
}

t.test('the provider\'s own back-channel logout (user signs out at the IdP) ends the gateway session', async (t) => {
  const rig = await oidcRig(t);
  const { jar } = await oidcSignIn(rig, 'alice');
  t.ok(await signedIn(rig, jar));
  // The user signs out at the provider: its confirmation form, then its back-channel call to us.
  const confirm = await browse(jar, `${rig.op.issuer}/session/end?client_id=gateway`);
  const action = /<form[^>]*action="([^"]+)"/.exec(confirm.body)?.[1];
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1];
  t.ok(action && xsrf, 'the provider asks to confirm');
  await browse(jar, new URL(action as string, rig.op.issuer).toString(), { method: 'POST', body: new URLSearchParams({ xsrf: xsrf as string, logout: 'yes' }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.ok(await waitFor(async () => !(await signedIn(rig, jar)), 3000), 'the gateway session is gone');
  t.ok(rig.op.requests.length > 0);
  const line = rig.gw.logs.find((l) => l.event === 'oidc.backchannel_logout');
  t.equal(line?.user, 'alice', 'audit oidc.backchannel_logout');
});

t.test('a logout token by sub ends every session of that user, and only theirs', async (t) => {
  const rig = await oidcRig(t);
  const a1 = (await oidcSignIn(rig, 'alice')).jar;
  const a2 = (await oidcSignIn(rig, 'alice')).jar;
  const bob = (await oidcSignIn(rig, 'bob')).jar;
  const res = await postLogout(rig, await logoutToken(rig, { sub: 'alice' }));
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.notOk(await signedIn(rig, a1));
  t.notOk(await signedIn(rig, a2));
  t.ok(await signedIn(rig, bob), 'another user keeps their session');
});

t.test('a replayed logout token ends nothing the second time (a new sign-in survives)', async (t) => {
  const rig = await oidcRig(t);
  await oidcSignIn(rig, 'alice');
  const token = await logoutToken(rig, { sub: 'alice' });
  t.equal((await postLogout(rig, token)).status, 200);
  const again = (await oidcSignIn(rig, 'alice')).jar;
  t.equal((await postLogout(rig, token)).status, 200, 'idempotent answer');
  t.ok(await signedIn(rig, again), 'the replay did not end the new session');
});

const bad: [string, (rig: OidcRig) => Promise<string>][] = [
  ['wrong audience', (rig) => logoutToken(rig, { sub: 'alice', aud: 'other-client' })],
  ['wrong issuer', (rig) => logoutToken(rig, { sub: 'alice', iss: 'http://127.0.0.1:1' })],
  ['a nonce (an ID token is never a logout token)', (rig) => logoutToken(rig, { sub: 'alice', nonce: 'n' })],
  ['no events member', (rig) => logoutToken(rig, { sub: 'alice', events: undefined })],
  ['events without the back-channel event', (rig) => logoutToken(rig, { sub: 'alice', events: { 'urn:other': {} } })],
  ['neither sid nor sub', (rig) => logoutToken(rig, { sub: undefined })],
  ['no jti', (rig) => logoutToken(rig, { sub: 'alice', jti: undefined })],
  ['no iat', (rig) => logoutToken(rig, { sub: 'alice', iat: undefined })],
  ['issued long ago', (rig) => logoutToken(rig, { sub: 'alice', iat: Math.floor(Date.now() / 1000) - 3600 })],
  ['another typ', (rig) => logoutToken(rig, { sub: 'alice' }, { typ: 'JWT+other' })],
  ['alg none', async (rig) => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${(await logoutToken(rig, { sub: 'alice' })).split('.')[1]}.`],
  ['a bad signature', async (rig) => { const [h, p] = (await logoutToken(rig, { sub: 'alice' })).split('.'); return `${h}.${p}.${Buffer.from('nope').toString('base64url')}`; }],
  ['not a JWT', async () => 'garbage'],
];

t.test('bad logout tokens: 400 problem, the session lives on', async (t) => {
  const rig = await oidcRig(t);
  const { jar } = await oidcSignIn(rig, 'alice');
  for (const [what, make] of bad) {
    const res = await postLogout(rig, await make(rig));
    t.equal(res.status, 400, what);
    t.match(res.headers.get('content-type') ?? '', /problem\+json/, what);
  }
  const missing = await fetch(`${rig.gw.url}/.auth/oidc/corp/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
  t.equal(missing.status, 400, 'no logout_token');
  t.ok(await signedIn(rig, jar), 'still signed in after every bad token');
});

t.test('RP-initiated logout: /logout ends the gateway session and sends the browser to the provider', async (t) => {
  const rig = await oidcRig(t, { auth: { rpInitiatedLogout: true } });
  const { jar } = await oidcSignIn(rig, 'alice');
  const out = await browse(jar, `${rig.gw.url}/.auth/logout`, { method: 'POST', body: 'rd=%2Fbye', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: rig.gw.url } });
  t.equal(out.status, 303);
  const to = new URL(out.location ?? '');
  t.equal(`${to.origin}${to.pathname}`, `${rig.op.issuer}/session/end`);
  t.ok(to.searchParams.get('id_token_hint'), 'id_token_hint');
  t.equal(to.searchParams.get('post_logout_redirect_uri'), `${rig.gw.url}/bye`);
  t.equal(to.searchParams.get('client_id'), 'gateway');
  t.notOk(await signedIn(rig, jar), 'the gateway session ended at once');
  const end = await browse(jar, to.toString());
  t.equal(end.status, 200, 'the provider accepts the hint and asks to confirm');
});

t.test('without rpInitiatedLogout, /logout only ends the gateway session', async (t) => {
  const rig = await oidcRig(t);
  const { jar } = await oidcSignIn(rig, 'alice');
  const out = await browse(jar, `${rig.gw.url}/.auth/logout`, { method: 'POST', body: 'rd=%2Fbye', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: rig.gw.url } });
  t.equal(out.location, `${rig.gw.url}/bye`);
  t.notOk(await signedIn(rig, jar));
});
