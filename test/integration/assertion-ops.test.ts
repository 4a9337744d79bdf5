import { createHash } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import t from 'tap';
import { request } from 'undici';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

const KEY = 'ops-key-0123456789abcdef';
const sha = (k: string) => 'sha256:' + createHash('sha256').update(k).digest('hex');

t.test('signed identity assertion verifies against /.auth/jwks.json; ops endpoints report per check', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    identity: { assertion: { header: 'X-Auth-Assertion', ttl: '60s' } },
    authenticators: { keys: { type: 'apikey', keys: [{ id: 'ops', hash: sha(KEY), user: 'svc-ops', groups: ['ops'], scopes: ['read'] }] } },
    routes: [{ name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['keys'] }],
  });
  const spoof = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
  const res = await request(`${gw.url}/api/x`, { headers: { 'x-api-key': KEY, 'x-auth-assertion': spoof } });
  t.equal(res.statusCode, 200);
  await res.body.dump();
  const assertion = echo.received[0]?.headers['x-auth-assertion'];
  t.type(assertion, 'string');
  t.not(assertion, spoof, 'the client-supplied assertion is replaced');
  const jwks = (await (await request(`${gw.url}/.auth/jwks.json`)).body.json()) as { keys: never[] };
  const { payload, protectedHeader } = await jwtVerify(assertion as string, createLocalJWKSet({ keys: jwks.keys }), { issuer: `${gw.url}/.auth`, audience: 'api' });
  t.equal(payload.sub, 'svc-ops');
  t.same(payload.groups, ['ops']);
  t.equal(protectedHeader.typ, 'authgate-assertion+jwt');
  t.ok((payload.exp as number) - (payload.iat as number) <= 60);

  // Anonymous requests carry no assertion; the spoofed one is stripped.
  const none = await request(`${gw.url}/api/x`);
  t.equal(none.statusCode, 401);
  await none.body.dump();

  const ready = await request(`${gw.adminUrl}/readyz`);
  t.equal(ready.statusCode, 200);
  const body = (await ready.body.json()) as { status: string; checks: Record<string, string> };
  t.equal(body.status, 'ok');
  t.equal(body.checks.store, 'ok');
  t.equal(body.checks['upstream:api'], 'ok');

  const metrics = await (await request(`${gw.adminUrl}/metrics`)).body.text();
  t.match(metrics, /authgate_requests_total\{route="api",method="GET",status="200"\} 1/);
  t.match(metrics, /authgate_auth_outcomes_total\{authenticator="keys",result="ok"\} 1/);
  t.match(metrics, /authgate_auth_outcomes_total\{authenticator="none",result="unauthenticated"\} 1/);
  t.match(metrics, /authgate_upstream_latency_seconds_count\{route="api"\} 1/);
  t.match(metrics, /authgate_store_latency_seconds/);

  // The public listener does not serve ops endpoints.
  const leak = await request(`${gw.url}/metrics`);
  t.equal(leak.statusCode, 404);
  await leak.body.dump();

  const line = gw.logs.find((l) => l.msg === 'request' && l.route === 'api' && l.status === 200);
  t.ok(line, 'one JSON line per request');
  t.match(line, { authenticator: 'keys', user: 'svc-ops', method: 'GET', path: '/api/x' });
  t.type(line?.ms, 'number');
});
