import t from 'tap';
import { request } from 'undici';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

t.test('anonymous route proxies with normalized path, stripped identity headers', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    routes: [
      { name: 'public', match: { path: '/public/**' }, upstream: echo.url, auth: 'anonymous' },
      { name: 'strip', match: { path: '/v1/**' }, upstream: echo.url + '/base', auth: 'anonymous', stripPath: '/v1' },
    ],
  });
  const res = await request(`${gw.url}/public/a/./b/../c?x=1&y=%2F`, { headers: { 'x-auth-user': 'admin', 'X_Auth_User': 'admin2', connection: 'close, x-forwarded-for' } });
  t.equal(res.statusCode, 200);
  const body = (await res.body.json()) as { url: string; headers: Record<string, string> };
  t.equal(body.url, '/public/a/c?x=1&y=%2F');
  t.notOk(body.headers['x-auth-user']);
  t.notOk(body.headers['x_auth_user']);
  t.equal(body.headers['x-forwarded-for'], '127.0.0.1');

  const r2 = await request(`${gw.url}/v1/items/%3Fq`);
  const b2 = (await r2.body.json()) as { url: string };
  t.equal(b2.url, '/base/items/%3Fq');

  const bad = await send(gw.url, '/public/%2e%2e/admin');
  t.equal(bad.status, 400);
  t.match(bad.headers['content-type'], /application\/problem\+json/);
  t.match(bad.json(), { code: 'bad_path', status: 400 });
  const badPct = await send(gw.url, '/public/%zz/admin');
  t.equal(badPct.status, 400);
  t.match(badPct.json(), { code: 'bad_path' });

  const none = await request(`${gw.url}/nothing`);
  t.equal(none.statusCode, 404);
  t.match(await none.body.json(), { code: 'no_route' });

  const health = await request(`${gw.adminUrl}/healthz`);
  t.same(await health.body.json(), { status: 'ok' });
  const metrics = await request(`${gw.adminUrl}/metrics`);
  t.match(await metrics.body.text(), /authgate_requests_total/);
});
