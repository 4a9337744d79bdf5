// Issue 9, items 6-9 and 13, performed through a running gateway: concurrent guesses against the
// lockout on every password entry point, identifier switching, self-granted token scopes, a
// stale session minting a fresh-looking token, and Basic for a user who must use MFA. Each test
// asserts the effect (upstream received nothing, no session or token exists), not only a status.
import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { accountKey } from '../../src/credentials/lockout.js';
import { callGateway } from '../helpers/http.js';
import { startTestEcho, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';

const PASSWORD = `pw-${randomUUID()}`;
const json = { 'content-type': 'application/json' };
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

let usersYaml: string | undefined;
async function usersFile(): Promise<string> {
  const hash = await hashPassword(PASSWORD);
  usersYaml ??= stringify({
    users: {
      alice: { email: 'alice@example.com', password: hash, groups: ['staff'] },
      bob: { email: 'bob@example.com', password: hash, groups: ['staff'] },
      mallory: { password: hash, groups: ['staff'], mfa: { required: true } },
      erin: { password: hash, groups: ['viewers'] },
    },
  });
  return usersYaml;
}

async function start(t: Test, extra: Record<string, unknown> = {}) {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      login: { lockout: { maxFailures: 5, maxFailuresPerAddress: 1000, window: '10m', duration: '15m' } },
      tokens: { grantableScopes: { staff: ['reports:read'] } },
      authenticators: { staff: { type: 'basic', realm: 'staff' }, web: { type: 'session' }, 'api-token': { type: 'token' }, 'local-jwt': { type: 'jwt', issuer: 'self' } },
      routes: [
        { name: 'basic', match: { path: '/basic/**' }, upstream: echo.url, auth: ['staff'] },
        { name: 'orders', match: { path: '/orders/**' }, upstream: echo.url, auth: ['api-token'], require: { scopes: ['orders:read'] } },
        { name: 'fresh', match: { path: '/fresh/**' }, upstream: echo.url, auth: ['web', 'local-jwt', 'api-token'], require: { maxAge: '2s' } },
      ],
      ...extra,
    },
    { files: { 'users.yaml': await usersFile() }, logLevel: 'info' },
  );
  return { gw, echo };
}

const login = (gw: TestGateway, username: string, password: string) =>
  callGateway(gw, '/.auth/login', { method: 'POST', headers: json, body: JSON.stringify({ username, password }) });

const drivers: Record<string, (t: Test) => Record<string, unknown>> = {
  memory: () => ({ driver: 'memory' }),
  sqlite: () => ({ driver: 'sqlite', sqlite: { path: './data/store.db' } }),
  redis: (t) => {
    const keyPrefix = `test:o-creds:${randomUUID()}:`;
    t.teardown(() => deleteRedisKeys(keyPrefix));
    return { driver: 'redis', redis: { url: REDIS_URL, keyPrefix } };
  },
};

for (const [driver, storeConfig] of Object.entries(drivers)) t.test(`9.7: 32 concurrent wrong guesses over /login, /token, /jwt/token and Basic, then the right password (${driver} store)`, async (t) => {
  const { gw, echo } = await start(t, { store: storeConfig(t) });
  const guesses = Array.from({ length: 32 }, (_, i) => {
    const password = `wrong-${i}`;
    switch (i % 4) {
      case 0:
        return login(gw, 'alice', password);
      case 1:
        return callGateway(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password }) });
      case 2:
        return callGateway(gw, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password }) });
      default:
        return callGateway(gw, '/basic/x', { headers: { authorization: basic('alice', password) } });
    }
  });
  // The right password goes out once the burst holds every reservation (read from the store
  // itself), while the granted guesses may still be hashing.
  const store = gw.current().ctx.store;
  t.ok(await waitFor(async () => Number(await store.get(`lockout:fail:acct:${accountKey('alice')}`)) >= 5, 20_000), 'the burst reached the lockout');
  const right = await login(gw, 'alice', PASSWORD);
  const results = await Promise.all(guesses);
  const statuses = results.map((r) => r.status);
  const evaluated = statuses.filter((s) => s === 401).length;
  t.ok(evaluated <= 5, `at most maxFailures guesses were evaluated (${evaluated} answered 401)`);
  t.equal(statuses.filter((s) => s === 429).length, 32 - evaluated, 'every other guess was refused unevaluated (429)');
  t.equal(right.status, 429, 'the right password during the burst: 429');
  t.match(right.body, { code: 'locked' });
  t.ok(Number(right.headers['retry-after']) > 0, 'with Retry-After');
  t.notOk(right.headers['set-cookie'], 'no session cookie');
  t.equal(echo.received.length, 0, 'no Basic guess reached the upstream');
  const tokenAfter = await callGateway(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD }) });
  t.equal(tokenAfter.status, 429, 'and no token can be had with the right password either');
  const audits = gw.logs.filter((l) => l.audit === true);
  t.equal(audits.filter((l) => l.event === 'login.failure' && l.reason === 'invalid_credentials').length, evaluated, 'one login.failure per evaluated guess');
  t.equal(audits.filter((l) => l.event === 'lockout').length, 1, 'one lockout event');
  t.same(new Set(audits.filter((l) => l.event === 'login.failure').map((l) => l.method)), new Set(['password', 'token-endpoint', 'jwt-endpoint', 'basic']), 'method says which entry point');
  t.notOk(gw.rawLogs.some((l) => l.includes(PASSWORD) || l.includes('wrong-')), 'no password in any log line');
});

t.test('9.8: switching between username, email and case does not escape the lock', async (t) => {
  const { gw, echo } = await start(t);
  for (let i = 0; i < 5; i++) t.equal((await login(gw, 'alice', `wrong-${i}`)).status, 401);
  for (const name of ['alice@example.com', 'ALICE@example.com', 'Alice']) {
    const r = await login(gw, name, PASSWORD);
    t.equal(r.status, 429, `${name} with the right password is locked`);
    t.notOk(r.headers['set-cookie'], 'no session');
  }
  const viaBasic = await callGateway(gw, '/basic/x', { headers: { authorization: basic('alice@example.com', PASSWORD) } });
  t.equal(viaBasic.status, 429, 'Basic with the email: locked too');
  t.equal(echo.received.length, 0, 'nothing reached the upstream');
  t.equal((await login(gw, 'bob', PASSWORD)).status, 200, 'other accounts unaffected');
});

t.test('9.13: Basic refuses a user who must use MFA, on the slow path and on cache hits', async (t) => {
  const { gw, echo } = await start(t);
  for (let i = 0; i < 3; i++) {
    const r = await callGateway(gw, '/basic/x', { headers: { authorization: basic('mallory', PASSWORD) } });
    t.equal(r.status, 403, `attempt ${i + 1}`);
    t.match(r.body, { code: 'mfa_required' });
  }
  t.equal(echo.received.length, 0, 'the upstream never saw mallory');
  const alice = await callGateway(gw, '/basic/x', { headers: { authorization: basic('alice', PASSWORD) } });
  t.equal(alice.status, 200, 'a user without MFA still gets through');
  t.equal(echo.received.at(-1)?.headers['x-auth-user'], 'alice');
});

t.test('9.6: users cannot give their own tokens scopes their groups may not grant', async (t) => {
  const { gw, echo } = await start(t);
  const session = await login(gw, 'alice', PASSWORD);
  t.equal(session.status, 200);
  const cookie = String(session.headers['set-cookie']).split(';')[0]!;
  const escalate = await callGateway(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie, origin: gw.current().ctx.publicUrl.origin }, body: JSON.stringify({ name: 'x', scopes: ['orders:read'] }) });
  t.equal(escalate.status, 403, 'orders:read is not grantable by staff');
  t.match(escalate.body, { code: 'forbidden' });
  const listed = await callGateway(gw, '/.auth/tokens', { headers: { cookie } });
  t.same(listed.body.tokens, [], 'no token was created');
  const allowed = await callGateway(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie, origin: gw.current().ctx.publicUrl.origin }, body: JSON.stringify({ name: 'y', scopes: ['reports:read'] }) });
  t.equal(allowed.status, 201, 'a grantable scope is fine');
  const unscoped = await callGateway(gw, '/orders/1', { headers: { authorization: `Token ${allowed.body.token as string}` } });
  t.equal(unscoped.status, 403, 'and that token does not pass require.scopes: [orders:read]');
  const erin = await login(gw, 'erin', PASSWORD);
  const erinCookie = String(erin.headers['set-cookie']).split(';')[0]!;
  const none = await callGateway(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie: erinCookie, origin: gw.current().ctx.publicUrl.origin }, body: JSON.stringify({ name: 'z', scopes: ['reports:read'] }) });
  t.equal(none.status, 403, 'a group without grantable scopes may grant none (default)');
  t.equal(echo.received.length, 0, 'nothing reached the upstream');
});

t.test('9.9: a stale session cannot mint a token (or refresh a JWT) that passes require.maxAge', async (t) => {
  const { gw, echo } = await start(t);
  const session = await login(gw, 'alice', PASSWORD);
  const cookie = String(session.headers['set-cookie']).split(';')[0]!;
  const pair = await callGateway(gw, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'bob', password: PASSWORD }) });
  t.equal(pair.status, 200);
  t.equal((await callGateway(gw, '/fresh/x', { headers: { cookie } })).status, 200, 'fresh session passes');
  // Wait (bounded) until the session is too old for the route.
  t.ok(await waitFor(async () => (await callGateway(gw, '/fresh/x', { headers: { cookie } })).status === 403, 10_000, 200), 'the session went stale');
  const passedBefore = echo.received.length;

  const minted = await callGateway(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie, origin: gw.current().ctx.publicUrl.origin }, body: JSON.stringify({ name: 'stale' }) });
  t.equal(minted.status, 201, 'the stale session may still create a token');
  const viaToken = await callGateway(gw, '/fresh/x', { headers: { authorization: `Token ${minted.body.token as string}` } });
  t.equal(viaToken.status, 403, 'but the token is as stale as the session');
  t.match(viaToken.body, { code: 'reauth_required' });
  const me = await callGateway(gw, '/.auth/me', { headers: { authorization: `Token ${minted.body.token as string}` } });
  const sessionMe = await callGateway(gw, '/.auth/me', { headers: { cookie } });
  t.equal(me.body.authTime, sessionMe.body.authTime, "the token's authTime is the session's sign-in");

  const refreshed = await callGateway(gw, '/.auth/jwt/refresh', { method: 'POST', headers: json, body: JSON.stringify({ refresh: pair.body.refresh }) });
  t.equal(refreshed.status, 200);
  const viaJwt = await callGateway(gw, '/fresh/x', { headers: { authorization: `Bearer ${refreshed.body.access as string}` } });
  t.equal(viaJwt.status, 403, 'a refreshed JWT carries the original sign-in time');
  t.match(viaJwt.body, { code: 'reauth_required' });
  t.equal(echo.received.length, passedBefore, 'neither reached the upstream');

  const fresh = await callGateway(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD }) });
  t.equal((await callGateway(gw, '/fresh/x', { headers: { authorization: `Token ${fresh.body.token as string}` } })).status, 200, 'a token from a password just checked is fresh');
});
