// plugins/trusted-header.js through a real gateway: the header is believed only from a direct
// peer inside `cidrs` (never because of X-Forwarded-For), and refused — not ignored — elsewhere.
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

const MODULE = fileURLToPath(new URL('../../plugins/trusted-header.js', import.meta.url));

function config(upstream: string, options: Record<string, unknown>, server: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server,
    authenticators: { lb: { type: 'plugin', module: MODULE, options } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream, auth: ['lb'], require: { groups: ['staff'] } }],
  };
}

t.test('from a peer inside cidrs: user and groups are taken from the headers', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url, { cidrs: ['127.0.0.0/8', '::1/128'], groupsHeader: 'X-LB-Groups', emailHeader: 'X-LB-Email', groups: ['lb'] }));
  const r = await send(gw.url, '/app/x', { headers: { 'x-lb-user': 'alice', 'x-lb-groups': 'staff, ops,,staff', 'x-lb-email': 'alice@example.test', 'x-auth-user': 'mallory' } });
  t.equal(r.status, 200, r.body);
  const h = echo.received[0]?.headers ?? {};
  t.equal(h['x-auth-user'], 'alice');
  t.equal(h['x-auth-groups'], 'lb,staff,ops');
  t.equal(h['x-auth-email'], 'alice@example.test');
  t.equal(h['x-auth-method'], 'plugin:lb');

  const noGroup = await send(gw.url, '/app/x', { headers: { 'x-lb-user': 'bob', 'x-lb-groups': 'ops' } });
  t.equal(noGroup.status, 403, 'route requirements still apply');
  const none = await send(gw.url, '/app/x');
  t.equal(none.status, 401, 'no header: not mine');
  t.equal(none.json().code, 'unauthenticated');
  const dup = await send(gw.url, '/app/x', { headers: { 'x-lb-user': ['alice', 'root'] } });
  t.equal(dup.status, 400, 'two user headers are ambiguous');
  const bad = await send(gw.url, '/app/x', { headers: { 'x-lb-user': 'a'.repeat(300) } });
  t.equal(bad.status, 401, 'a malformed user is refused');
  const badEmail = await send(gw.url, '/app/x', { headers: { 'x-lb-user': 'alice', 'x-lb-groups': 'staff', 'x-lb-email': 'not-an-email' } });
  t.equal(badEmail.status, 401);
  t.equal(echo.received.length, 1, 'only the first was forwarded');
});

t.test('from a peer outside cidrs: refused with 401, even when X-Forwarded-For names a trusted address', async (t) => {
  const echo = await startTestEcho(t);
  // 127.0.0.1 is a trusted proxy, so request.ip becomes the X-Forwarded-For address, but the
  // plugin must look at the direct peer (127.0.0.1), which is not a load balancer.
  const gw = await startTestGateway(t, config(echo.url, { cidrs: ['10.0.0.0/8'] }, { trustedProxies: ['127.0.0.1/32'] }));
  for (const headers of [
    { 'x-lb-user': 'alice' },
    { 'x-lb-user': 'alice', 'x-forwarded-for': '10.1.2.3' },
    { 'x-lb-user': 'alice', 'x-real-ip': '10.1.2.3', forwarded: 'for=10.1.2.3' },
  ]) {
    const r = await send(gw.url, '/app/x', { headers });
    t.equal(r.status, 401, JSON.stringify(headers));
    t.equal(r.json().code, 'invalid_credentials');
  }
  t.equal(echo.received.length, 0, 'NF');
  t.ok(gw.logs.some((l) => l.msg === 'identity header from an address outside the trusted load balancers'), 'the attempt is logged');
});

t.test('forward-auth: the peer is the client the trusted proxy reports, not the proxy itself', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url, { cidrs: ['127.0.0.1/32'], groupsHeader: 'X-LB-Groups' }, { trustedProxies: ['127.0.0.1/32'] }));
  const base = { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/x', 'x-forwarded-host': new URL(gw.url).host, 'x-lb-user': 'alice', 'x-lb-groups': 'staff' };
  const direct = await send(gw.url, '/.auth/verify', { headers: base });
  t.equal(direct.status, 200, direct.body);
  t.equal(direct.headers['x-auth-user'], 'alice');
  const outside = await send(gw.url, '/.auth/verify', { headers: { ...base, 'x-forwarded-for': '203.0.113.9' } });
  t.equal(outside.status, 401, 'the header came from a client outside the load balancers');
  t.notOk(outside.headers['x-auth-user']);
});

t.test('bad options are refused at start', async (t) => {
  const echo = await startTestEcho(t);
  const e1 = await startTestGateway(t, config(echo.url, { cidrs: ['not-an-ip'] })).then(() => undefined, (e: unknown) => e as Error);
  t.match(e1?.message, /authenticators\.lb.*not-an-ip.*is not an IP address/);
  const e2 = await startTestGateway(t, config(echo.url, { cidrs: ['10.0.0.0/33'] })).then(() => undefined, (e: unknown) => e as Error);
  t.match(e2?.message, /invalid prefix length/);
  const e3 = await startTestGateway(t, config(echo.url, { cidrs: [] })).then(() => undefined, (e: unknown) => e as Error);
  t.match(e3?.message, /options\.cidrs must NOT have fewer than 1 items/);
});
