// /token and /tokens through a running gateway, and API tokens on proxied routes.
import t from 'tap';
import { callGateway as call } from '../helpers/http.js';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

interface Echoed {
  headers: Record<string, string>;
}

const json = { 'content-type': 'application/json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };


t.test('/token, /tokens and API tokens on routes', async (t) => {
  const echo = await startTestEcho(t);
  const [alicePw, bobPw, carolPw] = await Promise.all([hashPassword('alice-pw'), hashPassword('bob-pw'), hashPassword('carol-pw')]);
  const users = {
    users: {
      alice: { email: 'alice@example.test', password: alicePw, groups: ['staff'] },
      bob: { password: bobPw, mfa: { required: true } },
      carol: { password: carolPw },
      dave: { password: carolPw, disabled: true },
      erin: { password: carolPw },
    },
  };
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      login: { lockout: { maxFailures: 3, window: '10m', duration: '15m' } },
      tokens: { prefix: 'tst_', defaultTtl: '30d', grantableScopes: { staff: ['orders:read', 'a', 'b'] } },
      authenticators: { 'api-token': { type: 'token' }, 'local-jwt': { type: 'jwt', issuer: 'self' } },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: echo.url, auth: ['api-token'], require: { scopes: ['orders:read'] } },
        { name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['local-jwt', 'api-token'] },
      ],
    },
    { files: { 'users.yaml': stringify(users) } },
  );

  // --- POST /token (DRF obtain_auth_token) ---
  const obtained = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.equal(obtained.status, 200);
  t.same(Object.keys(obtained.body), ['token']);
  t.match(obtained.headers['content-type'], /^application\/json/);
  t.equal(obtained.headers['cache-control'], 'no-store');
  const aliceToken = obtained.body.token as string;
  t.match(aliceToken, /^tst_[0-9A-Za-z]{49}$/);

  const viaForm = await call(gw, '/.auth/token', { method: 'POST', headers: form, body: 'username=alice&password=alice-pw' });
  t.equal(viaForm.status, 200, 'form bodies too');
  t.not(viaForm.body.token, aliceToken, 'a new token each time (only hashes are kept)');

  const wrong = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'carol', password: 'nope' }) });
  t.equal(wrong.status, 401);
  t.match(wrong.headers['content-type'], /^application\/problem\+json/);
  t.match(wrong.body, { code: 'invalid_credentials', status: 401 });
  const disabled = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'dave', password: 'carol-pw' }) });
  t.match(disabled.body, { code: 'invalid_credentials' }, 'a disabled user gets no token');
  for (const body of [{}, { username: 'alice' }, { password: 'x' }, { username: 'alice', password: 5 }]) {
    const r = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify(body) });
    t.equal(r.status, 400, JSON.stringify(body));
    t.match(r.body, { code: 'bad_request' });
  }
  const inQuery = await call(gw, '/.auth/token?password=alice-pw', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.equal(inQuery.status, 400, 'no credentials in the query string');
  const mfa = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'bob', password: 'bob-pw' }) });
  t.equal(mfa.status, 401);
  t.match(mfa.body, { code: 'mfa_required' }, 'a password alone does not get an MFA user a token (otp needed, issue 11)');
  for (let i = 0; i < 3; i++) await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'carol', password: `bad${i}` }) });
  const locked = await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'carol', password: 'carol-pw' }) });
  t.equal(locked.status, 429);
  t.match(locked.body, { code: 'locked' });
  t.ok(Number(locked.headers['retry-after']) > 0, 'Retry-After');

  // --- the token on proxied routes ---
  const viaToken = await call(gw, '/api/x', { headers: { authorization: `Token ${aliceToken}` } });
  t.equal(viaToken.status, 200);
  const seen = (viaToken.body as unknown as Echoed).headers;
  t.equal(seen['x-auth-user'], 'alice');
  t.equal(seen['x-auth-method'], 'token');
  t.equal(seen['x-auth-email'], 'alice@example.test');
  t.equal(seen['x-auth-groups'], 'staff');
  t.notOk(seen.authorization, 'the token is not forwarded');
  t.equal((await call(gw, '/api/x', { headers: { authorization: `Bearer ${aliceToken}` } })).status, 200, 'Bearer with the prefix');
  const noScope = await call(gw, '/orders/1', { headers: { authorization: `Token ${aliceToken}` } });
  t.equal(noScope.status, 403);
  t.match(noScope.body, { code: 'forbidden' });
  const junk = await call(gw, '/orders/1', { headers: { authorization: 'Token tst_notatoken' } });
  t.equal(junk.status, 401);
  t.match(junk.body, { code: 'invalid_token' });
  t.equal(junk.headers['www-authenticate'], 'Token');

  // --- /tokens ---
  t.equal((await call(gw, '/.auth/tokens')).status, 401, 'not signed in');
  const listed = await call(gw, '/.auth/tokens', { headers: { authorization: `Token ${aliceToken}` } });
  t.equal(listed.status, 200);
  const list = listed.body.tokens as Record<string, unknown>[];
  t.equal(list.length, 2);
  t.same(Object.keys(list[0]!).sort(), ['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'scopes']);
  t.equal(list[0]!.name, 'obtain_auth_token');
  t.equal((list[0]!.expiresAt as number) - (list[0]!.createdAt as number), 30 * 86400, 'tokens.defaultTtl');
  t.notOk(listed.text.includes(aliceToken.slice(4, 20)), 'no secret in the listing');

  const byToken = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, authorization: `Token ${aliceToken}` }, body: JSON.stringify({ name: 'escalate', scopes: ['orders:read'] }) });
  t.equal(byToken.status, 403, 'a token cannot mint tokens');

  const pair = await call(gw, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.equal(pair.status, 200);
  const jwtAuth = { authorization: `Bearer ${pair.body.access as string}` };
  const created = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, ...jwtAuth }, body: JSON.stringify({ name: 'ci', ttl: '7d', scopes: ['orders:read'] }) });
  t.equal(created.status, 201);
  t.same(Object.keys(created.body).sort(), ['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'scopes', 'token']);
  t.match(created.body, { name: 'ci', scopes: ['orders:read'], lastUsedAt: null });
  t.equal((created.body.expiresAt as number) - (created.body.createdAt as number), 7 * 86400);
  const ciToken = created.body.token as string;
  t.equal((await call(gw, '/orders/1', { headers: { authorization: `Token ${ciToken}` } })).status, 200, 'the scoped token passes require.scopes');

  const seconds = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...form, ...jwtAuth }, body: 'name=form&ttl=3600&scopes=a+b' });
  t.equal(seconds.status, 201);
  t.equal((seconds.body.expiresAt as number) - (seconds.body.createdAt as number), 3600);
  t.same(seconds.body.scopes, ['a', 'b']);

  const invalid = [
    {},
    { name: '' },
    { name: 'x'.repeat(101) },
    { name: 'tab\there' },
    { name: 5 },
    { name: 'x', ttl: '400d' },
    { name: 'x', ttl: 'forever' },
    { name: 'x', ttl: 0 },
    { name: 'x', ttl: -5 },
    { name: 'x', scopes: [1] },
    { name: 'x', scopes: ['has space'] },
    { name: 'x', scopes: { a: 1 } },
    { name: 'x', scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) },
  ];
  for (const body of invalid) {
    const r = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, ...jwtAuth }, body: JSON.stringify(body) });
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 60));
    t.match(r.body, { code: 'bad_request' });
  }

  // erin's tokens are not alice's to delete
  const erinToken = (await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'erin', password: 'carol-pw' }) })).body.token as string;
  const erinList = (await call(gw, '/.auth/tokens', { headers: { authorization: `Token ${erinToken}` } })).body.tokens as { id: string }[];
  t.equal(erinList.length, 1, "erin sees only erin's tokens");
  t.equal((await call(gw, `/.auth/tokens/${erinList[0]!.id}`, { method: 'DELETE', headers: jwtAuth })).status, 404, "another user's token id is 404");
  t.equal((await call(gw, '/api/x', { headers: { authorization: `Token ${erinToken}` } })).status, 200, "erin's token still works");
  t.equal((await call(gw, '/.auth/tokens/00000000-0000-4000-8000-000000000000', { method: 'DELETE', headers: jwtAuth })).status, 404);
  t.equal((await call(gw, '/.auth/tokens/not-an-id', { method: 'DELETE', headers: jwtAuth })).status, 404);
  const ciId = created.body.id as string;
  const deleted = await call(gw, `/.auth/tokens/${ciId}`, { method: 'DELETE', headers: jwtAuth });
  t.equal(deleted.status, 204);
  t.equal(deleted.text, '');
  const afterDelete = await call(gw, '/orders/1', { headers: { authorization: `Token ${ciToken}` } });
  t.equal(afterDelete.status, 401);
  t.match(afterDelete.body, { code: 'token_revoked' });
  t.equal((await call(gw, `/.auth/tokens/${ciId}`, { method: 'DELETE', headers: jwtAuth })).status, 404, 'already gone');

  // --- a session caller: CSRF applies to unsafe methods ---
  const login = await call(gw, '/.auth/login', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.equal(login.status, 200);
  const setCookie = login.headers['set-cookie'];
  const cookie = (Array.isArray(setCookie) ? setCookie[0]! : setCookie!).split(';')[0]!;
  t.equal((await call(gw, '/.auth/tokens', { headers: { cookie } })).status, 200, 'GET needs no Origin');
  const crossSite = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie, origin: 'https://evil.example' }, body: JSON.stringify({ name: 'x' }) });
  t.equal(crossSite.status, 403);
  t.match(crossSite.body, { code: 'csrf' });
  const noOrigin = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie }, body: JSON.stringify({ name: 'x' }) });
  t.match(noOrigin.body, { code: 'csrf' }, 'no Origin or Referer at all');
  const sameSite = await call(gw, '/.auth/tokens', { method: 'POST', headers: { ...json, cookie, origin: new URL(gw.url).origin }, body: JSON.stringify({ name: 'from the browser' }) });
  t.equal(sameSite.status, 201);
  const sessionList = (await call(gw, '/.auth/tokens', { headers: { cookie } })).body.tokens as { id: string }[];
  const delCross = await call(gw, `/.auth/tokens/${sessionList[0]!.id}`, { method: 'DELETE', headers: { cookie, origin: 'https://evil.example' } });
  t.equal(delCross.status, 403, 'DELETE too');

  // --- no secret in any log line ---
  const logs = gw.rawLogs.join('\n');
  for (const secret of [aliceToken, ciToken, sameSite.body.token as string, 'alice-pw', 'carol-pw']) t.notOk(logs.includes(secret), 'secret not logged');
});
