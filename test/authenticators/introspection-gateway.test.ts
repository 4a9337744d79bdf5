// Introspection through a running gateway: THREATS 17, 18 (cache keyed per authenticator and
// endpoint; scopes checked per route on cache hits), 20, and that nothing is forwarded on failure.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

t.test('introspection routes', async (t) => {
  // Stub AS: /a and /b are two authorization servers; answers by path and token.
  const answers = new Map<string, { status: number; body: string }>();
  const calls: string[] = [];
  const as = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const token = new URLSearchParams(Buffer.concat(chunks).toString()).get('token') ?? '';
      calls.push(`${req.url} ${token}`);
      const a = answers.get(`${req.url} ${token}`) ?? { status: 200, body: '{"active":false}' };
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => as.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => as.close(r)));
  const asUrl = `http://127.0.0.1:${(as.address() as AddressInfo).port}`;
  const answer = (path: string, token: string, body: unknown, status = 200) => answers.set(`${path} ${token}`, { status, body: JSON.stringify(body) });

  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    authenticators: {
      'idp-a': { type: 'introspection', endpoint: `${asUrl}/a`, clientId: 'gw', clientSecret: 'gw-secret-a', cacheTtl: '5m', timeout: '1s' },
      'idp-b': { type: 'introspection', endpoint: `${asUrl}/b`, clientId: 'gw', clientSecret: 'gw-secret-b', cacheTtl: '5m', timeout: '1s' },
      'local-jwt': { type: 'jwt', issuer: 'self' },
    },
    routes: [
      { name: 'partner', match: { path: '/partner/**' }, upstream: echo.url, auth: ['idp-b'] },
      { name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['local-jwt', 'idp-a'] },
      { name: 'foo', match: { path: '/foo/**' }, upstream: echo.url, auth: ['idp-a'], require: { scopes: ['foo'] } },
      { name: 'bar', match: { path: '/bar/**' }, upstream: echo.url, auth: ['idp-a'], require: { scopes: ['bar'] } },
    ],
  }, { files: { 'users.yaml': stringify({ users: { alice: { password: await hashPassword('alice-pw') } } }) } });
  const get = async (path: string, token: string) => {
    const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> };
  };

  // THREATS 18: a token valid only at B does not pass at A because B's verdict is cached.
  answer('/b', 'shared-token', { active: true, username: 'partner-user', scope: 'foo' });
  const atB = await get('/partner/x', 'shared-token');
  t.equal(atB.status, 200);
  t.equal((atB.body.headers as Record<string, string>)['x-auth-user'], 'partner-user');
  t.equal((atB.body.headers as Record<string, string>)['x-auth-method'], 'introspection');
  const atA = await get('/api/x', 'shared-token');
  t.equal(atA.status, 401, 'introspected at A, not served from B');
  t.match(atA.body, { code: 'invalid_token' });
  t.equal(atA.headers['www-authenticate'], 'Bearer realm="authgate", error="invalid_token"');
  t.ok(calls.includes('/a shared-token'));

  // Scopes are checked per route on every request, cached verdict or not.
  answer('/a', 'foo-token', { active: true, sub: 'u1', scope: 'foo' });
  t.equal((await get('/foo/x', 'foo-token')).status, 200);
  const bar = await get('/bar/x', 'foo-token');
  t.equal(bar.status, 403);
  t.match(bar.body, { code: 'forbidden' });
  t.equal(calls.filter((c) => c === '/a foo-token').length, 1, 'the second route used the cached verdict');

  // THREATS 17 / 20: AS failures are 503, not forwarded, and not cached.
  const before = echo.received.length;
  for (const [token, status, body] of [
    ['str-false', 200, { active: 'false', username: 'admin' }],
    ['one', 200, { active: 1, username: 'admin' }],
    ['empty', 200, {}],
  ] as const) {
    answer('/a', token, body, status);
    const r = await get('/api/x', token);
    t.equal(r.status, 401, token);
  }
  answer('/a', 'err-token', { active: true, username: 'admin' }, 500);
  const err = await get('/api/x', 'err-token');
  t.equal(err.status, 503);
  t.match(err.body, { code: 'service_unavailable' });
  t.equal(echo.received.length, before, 'nothing was forwarded');
  answer('/a', 'err-token', { active: true, username: 'alice' });
  t.equal((await get('/api/x', 'err-token')).status, 200, 'recovers at once: the error was not cached');

  // A gateway API token is never sent to the external AS, even on a chain without `token`.
  const obtained = await request(`${gw.url}/.auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  const apiToken = ((await obtained.body.json()) as { token: string }).token;
  const callsBefore = calls.length;
  const ours = await get('/api/x', apiToken);
  t.equal(ours.status, 401);
  t.match(ours.body, { code: 'unauthenticated' });
  t.equal(calls.length, callsBefore, 'no introspection call for a gateway token');
  const logs = gw.rawLogs.join('\n');
  for (const secret of ['gw-secret-a', 'gw-secret-b', 'shared-token', 'foo-token', 'err-token', apiToken]) t.notOk(logs.includes(secret), 'not logged');
});
