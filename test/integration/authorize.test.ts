import { createHash } from 'node:crypto';
import t from 'tap';
import { request } from 'undici';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

const sha = (k: string) => 'sha256:' + createHash('sha256').update(k).digest('hex');

t.test('chain outcomes, challenges, requirements and login redirects', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    authenticators: {
      staff: { type: 'basic', realm: 'staff' },
      keys: {
        type: 'apikey',
        keys: [
          { id: 'reader', hash: sha('reader-key-000000000001'), user: 'svc-reader', scopes: ['orders:read'], groups: ['svc'] },
          { id: 'admin', hash: sha('admin-key-0000000000002'), user: 'svc-admin', scopes: ['orders:read', 'orders:write'], groups: ['admin'] },
        ],
      },
    },
    routes: [
      { name: 'orders', match: { path: '/orders/**' }, upstream: echo.url, auth: ['staff', 'keys'], require: { scopes: ['orders:read', 'orders:write'] } },
      { name: 'admin', match: { path: '/admin/**' }, upstream: echo.url, auth: ['staff', 'keys'], require: { groups: ['admin'] }, onUnauthenticated: 'login' },
      { name: 'mfa', match: { path: '/mfa-only/**' }, upstream: echo.url, auth: ['keys'], require: { mfa: true } },
      { name: 'fresh', match: { path: '/fresh/**' }, upstream: echo.url, auth: ['keys'], require: { maxAge: '1m' } },
      { name: 'get-only', match: { path: '/ro/**', methods: ['GET'] }, upstream: echo.url, auth: 'anonymous' },
    ],
  });

  const none = await request(`${gw.url}/orders/1`);
  t.equal(none.statusCode, 401);
  t.equal(none.headers['www-authenticate'], 'Basic realm="staff", charset="UTF-8"');
  t.match(await none.body.json(), { code: 'unauthenticated', status: 401, type: 'about:blank' });

  const wrong = await request(`${gw.url}/orders/1`, { headers: { 'x-api-key': 'nope-nope-nope-nope' } });
  t.equal(wrong.statusCode, 401, 'a rejection stops the chain');
  await wrong.body.dump();

  const reader = await request(`${gw.url}/orders/1`, { headers: { 'x-api-key': 'reader-key-000000000001' } });
  t.equal(reader.statusCode, 403);
  t.match(await reader.body.json(), { code: 'forbidden' });

  const admin = await request(`${gw.url}/orders/1`, { headers: { 'x-api-key': 'admin-key-0000000000002' } });
  t.equal(admin.statusCode, 200);
  const seen = (await admin.body.json()) as { headers: Record<string, string> };
  t.equal(seen.headers['x-auth-user'], 'svc-admin');
  t.equal(seen.headers['x-auth-scopes'], 'orders:read orders:write');
  t.equal(seen.headers['x-auth-groups'], 'admin');
  t.equal(seen.headers['x-auth-method'], 'apikey');
  t.equal(seen.headers['x-auth-mfa'], 'false');
  t.notOk(seen.headers['x-api-key'], 'the consumed key is not forwarded');

  const before = echo.received.length;
  const html = await request(`${gw.url}/admin/page?x=1`, { headers: { accept: 'text/html' } });
  t.equal(html.statusCode, 302);
  t.equal(html.headers.location, '/.auth/login?rd=' + encodeURIComponent('/admin/page?x=1'));
  await html.body.dump();
  const api = await request(`${gw.url}/admin/page`, { headers: { accept: 'application/json' } });
  t.equal(api.statusCode, 401, 'non-browser requests get the challenge');
  await api.body.dump();
  const notAdmin = await request(`${gw.url}/admin/page`, { headers: { 'x-api-key': 'reader-key-000000000001' } });
  t.equal(notAdmin.statusCode, 403);
  await notAdmin.body.dump();

  const mfa = await request(`${gw.url}/mfa-only/x`, { headers: { 'x-api-key': 'admin-key-0000000000002' } });
  t.equal(mfa.statusCode, 403);
  t.match(await mfa.body.json(), { code: 'mfa_required' });
  t.equal(echo.received.length, before, 'denied requests never reach the upstream');

  const fresh = await request(`${gw.url}/fresh/x`, { headers: { 'x-api-key': 'admin-key-0000000000002' } });
  t.equal(fresh.statusCode, 200, 'a credential checked now is fresh');
  await fresh.body.dump();

  const post = await request(`${gw.url}/ro/x`, { method: 'POST', body: 'x' });
  t.equal(post.statusCode, 404, 'method-scoped route does not match POST');
  await post.body.dump();
  const head = await request(`${gw.url}/ro/x`, { method: 'HEAD' });
  t.equal(head.statusCode, 200, 'HEAD goes with GET');
  await head.body.dump();
  const trace = await request(`${gw.url}/ro/x`, { method: 'TRACE' });
  t.equal(trace.statusCode, 405);
  await trace.body.dump();
});

t.test('a credential in two places is refused (THREATS 14)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    authenticators: { staff: { type: 'basic' } },
    routes: [{ name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['staff'] }],
  });
  const { send } = await import('../helpers/http.js');
  const two = await send(gw.url, '/api/x', { headers: { authorization: ['Basic YTpi', 'Basic Yzpk'] as unknown as string } });
  t.equal(two.status, 400);
  t.match(two.json(), { code: 'bad_request' });
  const both = await send(gw.url, '/api/x?access_token=abc', { headers: { authorization: 'Bearer xyz' } });
  t.equal(both.status, 400);
  t.equal(echo.received.length, 0, 'not forwarded');
});
