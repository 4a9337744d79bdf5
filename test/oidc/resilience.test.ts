// Provider key rotation, a provider that is down when the gateway starts, and back-channel logout
// across two gateway instances on the real Redis.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { Redis } from 'ioredis';
import { startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';
import { browse, CookieJar, signInAtProvider, startTestOp } from '../helpers/oidc.js';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';
import { oidcRig, oidcSignIn } from './_setup.js';

t.test('JWKS rotation at the provider: the next sign-in verifies with the new key', async (t) => {
  // An unknown kid refetches the keys at most once per jwksRefreshInterval (30 s by default).
  const rig = await oidcRig(t, { auth: { jwksRefreshInterval: '1s' } });
  t.equal((await oidcSignIn(rig, 'alice')).last.status, 200);
  await rig.op.rotateKey();
  await new Promise((r) => setTimeout(r, 1100)); // past the refetch interval (a rate limit, not a wait for a condition)
  const second = await oidcSignIn(rig, 'alice');
  t.equal(second.last.status, 200, 'signed in with an ID token under the new kid');
  t.equal(second.last.url, `${rig.gw.url}/app/x`);
  t.equal(rig.op.requests.filter((r) => r === 'GET /jwks').length, 2, 'the keys were fetched again once, for the unknown kid');
});

t.test('provider down at start: the gateway starts, /readyz says so, only its login answers 503, then it recovers', async (t) => {
  const op = await startTestOp(t);
  op.setDown(true);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    authenticators: { web: { type: 'session' }, corp: { type: 'oidc', issuer: op.issuer, clientId: 'gateway', clientSecret: 'gateway-secret', label: 'Corp SSO' } },
    routes: [
      { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'corp'], onUnauthenticated: 'login' },
      { name: 'open', match: { path: '/open/**' }, upstream: echo.url, auth: 'anonymous' },
    ],
  });
  op.configure([{ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/.auth/oidc/corp/callback`] }]);
  const ready = await fetch(`${gw.adminUrl}/readyz`);
  t.equal(ready.status, 503);
  t.equal(((await ready.json()) as { checks: Record<string, string> }).checks['oidc:corp'], 'unavailable', '/readyz reports oidc:corp');
  const jar = new CookieJar();
  const login = await browse(jar, `${gw.url}/.auth/oidc/corp/login?rd=/app/x`);
  t.equal(login.status, 503);
  t.match(login.body, /Sign-in with Corp SSO is unavailable right now/);
  t.equal((await browse(jar, `${gw.url}/.auth/login`)).status, 200, 'the login page still works');
  t.equal((await browse(jar, `${gw.url}/open/x`)).status, 200, 'other routes still work');

  op.setDown(false);
  t.ok(await waitFor(async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200, 10_000, 200), 'ready once the provider answers');
  const done = await signInAtProvider(jar, `${gw.url}/.auth/oidc/corp/login?rd=/app/x`, 'alice', () => false);
  t.equal(done.last.status, 200, 'sign-in works again');
});

t.test('two instances on Redis: a back-channel logout received by A ends the session on B within 1 s', async (t) => {
  const keyPrefix = `test:oidc:${randomUUID()}:`;
  t.teardown(() => deleteRedisKeys(keyPrefix));
  const op = await startTestOp(t);
  const echo = await startTestEcho(t);
  const config = {
    store: { driver: 'redis', redis: { url: REDIS_URL, keyPrefix } },
    authenticators: { web: { type: 'session' }, corp: { type: 'oidc', issuer: op.issuer, clientId: 'gateway', clientSecret: 'gateway-secret' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'corp'], onUnauthenticated: 'login' }],
  };
  const a = await startTestGateway(t, config);
  const b = await startTestGateway(t, config);
  op.configure([{ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${a.url}/.auth/oidc/corp/callback`, `${b.url}/.auth/oidc/corp/callback`] }]);

  const jar = new CookieJar();
  const signed = await signInAtProvider(jar, `${b.url}/.auth/oidc/corp/login?rd=/app/x`, 'alice', () => false);
  t.equal(signed.last.status, 200, 'signed in on B');
  t.equal((await browse(jar, `${b.url}/app/x`)).status, 200, 'B has the session (and caches it)');
  t.equal((await browse(jar, `${a.url}/app/x`)).status, 200, 'A accepts it too');

  const now = Math.floor(Date.now() / 1000);
  const token = await op.sign({ iss: op.issuer, aud: 'gateway', iat: now, exp: now + 120, jti: randomUUID(), sub: 'alice', events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }, { typ: 'logout+jwt' });
  const res = await fetch(`${a.url}/.auth/oidc/corp/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }) });
  t.equal(res.status, 200);
  const at = Date.now();
  t.ok(await waitFor(async () => (await browse(jar, `${b.url}/app/x`)).status === 302, 1000, 10), 'B refuses the session within 1 s');
  t.ok(Date.now() - at <= 1000);
  const r = new Redis(REDIS_URL);
  t.teardown(() => r.disconnect());
  t.same(await r.keys(`${keyPrefix}session:*`), [], 'no session record left in Redis');
});
