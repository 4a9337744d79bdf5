// Issue 9, items 11, 12, 14 and 15, performed through a running gateway: an OAuth client named
// like a user, revoking another party's tokens, guessing client secrets, introspection answers
// without a sign-in time, and gateway tokens of an old prefix sent to a third-party AS.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { ApiTokenService } from '../../src/tokens/api-tokens.js';
import { callGateway } from '../helpers/http.js';
import { makeTempDir, startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';

const SECRET = `s-${randomUUID()}`;
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${encodeURIComponent(user)}:${encodeURIComponent(password)}`, 'utf8').toString('base64')}`;

let hash: string | undefined;
const secretHash = async (): Promise<string> => (hash ??= await hashPassword(SECRET));

/** A stub authorization server: answers by token, records every token it was sent. */
async function startAs(t: Test, answers: Map<string, unknown>) {
  const received: string[] = [];
  const as = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const token = new URLSearchParams(Buffer.concat(chunks).toString()).get('token') ?? '';
      received.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answers.get(token) ?? { active: false }));
    });
  });
  await new Promise<void>((r) => as.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => as.close(r)));
  return { url: `http://127.0.0.1:${(as.address() as AddressInfo).port}/introspect`, received };
}

t.test('9.11: an OAuth client id equal to a username is refused at load and on users reload', async (t) => {
  const echo = await startTestEcho(t);
  const config = (users: string) => ({
    users: { file: users },
    oauth: { clients: [{ id: 'carol', secretHash: hash, scopes: [] }] },
    authenticators: { 'local-jwt': { type: 'jwt', issuer: 'self' } },
    routes: [{ name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['local-jwt'] }],
  });
  await secretHash();
  await t.rejects(
    startTestGateway(t, config('./users.yaml'), { files: { 'users.yaml': stringify({ users: { carol: { password: hash } } }) } }),
    /users\.carol: is also an OAuth client id/,
    'a clash stops the start with a clear error',
  );

  const dir = makeTempDir(t);
  writeFileSync(join(dir, 'users.yaml'), stringify({ users: { alice: { password: hash } } }));
  const gw = await startTestGateway(t, config('./users.yaml'), { dir });
  writeFileSync(join(dir, 'users.yaml'), stringify({ users: { alice: { password: hash }, Carol: { password: hash } } }));
  t.ok(await waitFor(() => gw.logs.some((l) => l.msg === 'users file invalid; keeping the previous users'), 10_000), 'the reload is refused');
  const asUser = await callGateway(gw, '/.auth/login', { method: 'POST', headers: json, body: JSON.stringify({ username: 'Carol', password: SECRET }) });
  t.equal(asUser.status, 401, 'the clashing user was not loaded');
  const token = await callGateway(gw, '/.auth/oauth/token', { method: 'POST', headers: { ...form, authorization: basic('carol', SECRET) }, body: 'grant_type=client_credentials' });
  t.equal(token.status, 200);
  const r = await callGateway(gw, '/api/x', { headers: { authorization: `Bearer ${token.body.access_token as string}` } });
  t.equal(r.status, 200);
  t.equal((r.body.headers as Record<string, string>)['x-auth-user'], 'carol', 'the only carol upstream can see is the client');
});

t.test('9.12: a client cannot revoke what was not issued to it; client secret guesses are limited like logins', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      login: { lockout: { maxFailures: 3, maxFailuresPerAddress: 1000 } },
      oauth: {
        clients: [
          { id: 'billing', secretHash: await secretHash(), scopes: ['invoices:read'] },
          { id: 'reports', secretHash: await secretHash(), scopes: [] },
        ],
      },
      authenticators: { 'local-jwt': { type: 'jwt', issuer: 'self' }, 'api-token': { type: 'token' } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['local-jwt', 'api-token'] }],
    },
    { files: { 'users.yaml': stringify({ users: { alice: { password: await secretHash() } } }) } },
  );
  const revoke = (token: string, client = 'reports') =>
    callGateway(gw, '/.auth/oauth/revoke', { method: 'POST', headers: { ...form, authorization: basic(client, SECRET) }, body: new URLSearchParams({ token }).toString() });
  const pair = await callGateway(gw, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: SECRET }) });
  const apiToken = (await callGateway(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: SECRET }) })).body.token as string;
  const billing = (await callGateway(gw, '/.auth/oauth/token', { method: 'POST', headers: { ...form, authorization: basic('billing', SECRET) }, body: 'grant_type=client_credentials' })).body.access_token as string;

  for (const [what, token] of [["alice's refresh token", pair.body.refresh], ["alice's access token", pair.body.access], ["alice's API token", apiToken], ["billing's token", billing]] as const) {
    const r = await revoke(token as string);
    t.equal(r.status, 400, `reports cannot revoke ${what}`);
    t.equal(r.body.error, 'unauthorized_client');
  }
  const refreshed = await callGateway(gw, '/.auth/jwt/refresh', { method: 'POST', headers: json, body: JSON.stringify({ refresh: pair.body.refresh }) });
  t.equal(refreshed.status, 200, "alice's refresh family is intact");
  for (const auth of [`Bearer ${pair.body.access as string}`, `Token ${apiToken}`, `Bearer ${billing}`]) {
    t.equal((await callGateway(gw, '/api/x', { headers: { authorization: auth } })).status, 200, 'still valid upstream');
  }
  t.equal((await revoke(billing, 'billing')).status, 200, 'the client revokes its own token');
  t.equal((await callGateway(gw, '/api/x', { headers: { authorization: `Bearer ${billing}` } })).status, 401);

  // Guessing billing's secret: three wrong guesses, then even the right secret is refused.
  const guess = (secret: string, path = '/.auth/oauth/token') =>
    callGateway(gw, path, { method: 'POST', headers: { ...form, authorization: `Basic ${Buffer.from(`billing:${secret}`).toString('base64')}` }, body: 'grant_type=client_credentials&token=x' });
  const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => guess(`wrong-${i}`, i % 2 === 0 ? '/.auth/oauth/token' : '/.auth/oauth/introspect')));
  const statuses = burst.map((r) => r.status);
  t.ok(statuses.filter((s) => s === 401).length <= 3, `at most 3 guesses evaluated (${statuses.join(',')})`);
  t.equal(statuses.filter((s) => s === 429).length + statuses.filter((s) => s === 401).length, 8);
  const right = await guess(SECRET, '/.auth/oauth/revoke');
  t.equal(right.status, 429, 'a fresh connection with the right secret is locked out too');
  t.match(right.body, { code: 'locked' });
  t.ok(Number(right.headers['retry-after']) > 0);
  t.match(gw.logs.filter((l) => l.audit === true && l.event === 'lockout'), [{ user: 'billing', method: 'oauth-client' }], 'one lockout audit event');
  t.notOk(gw.rawLogs.some((l) => l.includes(SECRET)), 'no secret logged');
});

t.test('9.14 and 9.15: introspection without a sign-in time, and gateway tokens of an old prefix', async (t) => {
  const echo = await startTestEcho(t);
  const answers = new Map<string, unknown>([
    ['no-iat', { active: true, sub: 'carol' }],
    ['with-iat', { active: true, sub: 'carol', iat: Math.floor(Date.now() / 1000) }],
    ['old-auth-time', { active: true, sub: 'carol', iat: Math.floor(Date.now() / 1000), auth_time: Math.floor(Date.now() / 1000) - 3600 }],
  ]);
  const as = await startAs(t, answers);
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      tokens: { prefix: 'agt_' },
      authenticators: { 'api-token': { type: 'token' }, as: { type: 'introspection', endpoint: as.url, clientId: 'gw', clientSecret: 'gw-secret', cacheTtl: '1m' } },
      routes: [
        { name: 'fresh', match: { path: '/fresh/**' }, upstream: echo.url, auth: ['api-token', 'as'], require: { maxAge: '60s' } },
        { name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['api-token', 'as'] },
      ],
    },
    { files: { 'users.yaml': stringify({ users: { alice: { password: await secretHash() } } }) } },
  );
  const bearer = (path: string, token: string) => callGateway(gw, path, { headers: { authorization: `Bearer ${token}` } });

  const noIat = await bearer('/fresh/x', 'no-iat');
  t.equal(noIat.status, 403, 'no iat or auth_time: the sign-in time is unknown');
  t.match(noIat.body, { code: 'reauth_required' });
  t.equal((await bearer('/fresh/x', 'old-auth-time')).status, 403, 'auth_time wins over a fresh iat');
  t.equal(echo.received.length, 0, 'neither reached the upstream');
  t.equal((await bearer('/fresh/x', 'with-iat')).status, 200, 'a recent iat passes');
  t.equal((await bearer('/api/x', 'no-iat')).status, 200, 'routes without maxAge still accept it');

  // A token issued while tokens.prefix was old_ is still valid in the store.
  const legacy = new ApiTokenService({ store: gw.current().ctx.store, config: { tokens: { prefix: 'old_' } } });
  t.teardown(() => legacy.close());
  const { token: oldToken } = await legacy.createToken({ user: 'alice', name: 'legacy' });
  const before = as.received.length;
  const asBearer = await bearer('/api/x', oldToken);
  t.equal(asBearer.status, 401, 'Bearer with an old prefix: not ours by SPEC 4, and not sent away');
  t.equal(as.received.length, before, 'the introspection server never received the gateway token');
  t.notOk(as.received.includes(oldToken));
  const asToken = await callGateway(gw, '/api/x', { headers: { authorization: `Token ${oldToken}` } });
  t.equal(asToken.status, 200, 'it still works as `Token <key>`');
});
