// THREATS I (60-71): path normalisation and per-route rules through a real gateway.
// /public/** is anonymous, /admin/** needs an admin API key. NF = the upstream saw nothing.
import t from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { normalizeTarget } from '../../src/routing/normalize.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send, sendRaw } from '../helpers/http.js';
import { KEY_ADMIN, KEY_ALICE, startThreatGateway, statusOf, threatConfig } from './_fixtures.js';

const ADMIN = { 'x-api-key': KEY_ADMIN };

t.test('60 dot segments: resolved before matching, or refused; the upstream gets the authorised path', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  const plain = await send(gw.url, '/public/../admin/users');
  t.equal(plain.status, 401, '/public/../admin/users is judged as /admin/users');
  for (const p of ['/public/%2e%2e/admin/users', '/public/.%2e/admin/users', '/public/%2E%2E/admin/users', '/public/%2e%2e%2fadmin/users', '/public/%2e/../admin/users']) {
    const r = await send(gw.url, p);
    t.equal(r.status, 400, p);
    t.equal(r.json().code, 'bad_path', p);
  }
  t.equal(echo.received.length, 0, 'NF');
  const authed = await send(gw.url, '/public/../admin/users', { headers: ADMIN });
  t.equal(authed.status, 200);
  t.equal(echo.received[0]?.url, '/admin/users', 'forwarded path = authorised path');
  const dots = await send(gw.url, '/public/a/./b/../c');
  t.equal(dots.status, 200);
  t.equal(echo.received[1]?.url, '/public/a/c');
});

t.test('61 encoded slashes and double encoding', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  for (const p of ['/public%2F..%2Fadmin/users', '/admin%2fusers', '/public/%2F/admin', '/public/a%5cb']) {
    const r = await send(gw.url, p);
    t.equal(r.status, 400, p);
  }
  const letter = await send(gw.url, '/%61dmin/users');
  t.equal(letter.status, 401, '/%61dmin is /admin');
  t.equal(echo.received.length, 0, 'NF');
  // Decoded once: %252e stays a literal "%2e" segment, and is forwarded re-encoded, never as "..".
  const dbl = await send(gw.url, '/public/%252e%252e/admin');
  t.equal(dbl.status, 200);
  t.equal(echo.received[0]?.url, '/public/%252e%252e/admin', 'the upstream sees the same single-decoded segment');
  const letterOk = await send(gw.url, '/%61dmin/users', { headers: ADMIN });
  t.equal(letterOk.status, 200);
  t.equal(echo.received[1]?.url, '/admin/users', 'forwarded in canonical form');
});

t.test('62 backslashes', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  for (const p of ['/public/..\\admin/users', '/public\\..\\admin', '/public/%5c..%5cadmin', '/public/%5C..%5Cadmin']) {
    const raw = await sendRaw(gw.url, `GET ${p} HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nConnection: close\r\n\r\n`);
    t.equal(statusOf(raw), 400, p);
  }
  t.equal(echo.received.length, 0, 'NF');
});

t.test('63 repeated slashes are merged before matching', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  for (const p of ['//admin/users', '/admin//users', '///admin', '/public//../admin', '/public/..//admin']) {
    const r = await send(gw.url, p);
    t.equal(r.status, 401, p);
  }
  t.equal(echo.received.length, 0, 'NF');
  const ok = await send(gw.url, '//admin//users', { headers: ADMIN });
  t.equal(ok.status, 200);
  t.equal(echo.received[0]?.url, '/admin/users');
});

t.test('64 case, trailing characters and suffixes: 401/404/400, never forwarded anonymously', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  const expected: Record<string, number[]> = {
    '/ADMIN/users': [404], '/Admin/Users': [404], '/admin.': [404], '/admin/': [401], '/admin': [401], '/admin%20': [404],
    '/admin%00': [400], '/admin/users.json': [401], '/admin%23x': [404], '/admin/..;/': [400], '/admin/.;/x': [400],
    '/admin;/users': [404], '/admin/users;jsessionid=x': [401], '/admin%2e': [404], '/admin/%2e': [400],
  };
  for (const [p, statuses] of Object.entries(expected)) {
    const r = await send(gw.url, p);
    t.ok(statuses.includes(r.status), `${p} → ${r.status}`);
    t.match(r.headers['content-type'], /problem\+json/, p);
  }
  t.equal(echo.received.length, 0, 'NF: none reached the upstream');
});

t.test('66 query and fragment never pick the rule', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  for (const p of ['/admin/users?x=/public/', '/admin/users?/public', '/admin/users?%2F..%2Fpublic', '/admin?/../public/x']) {
    const r = await send(gw.url, p);
    t.equal(r.status, 401, p);
  }
  const frag = await sendRaw(gw.url, `GET /admin/users#/public HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nConnection: close\r\n\r\n`);
  t.equal(statusOf(frag), 400, 'a raw # is refused');
  const fragPublic = await sendRaw(gw.url, `GET /public/x#/../../admin HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nConnection: close\r\n\r\n`);
  t.equal(statusOf(fragPublic), 400);
  t.equal(echo.received.length, 0, 'NF');
  const q = await send(gw.url, '/public/x?next=/admin/users&a=%2F..%2F');
  t.equal(q.status, 200);
  t.equal(echo.received[0]?.url, '/public/x?next=/admin/users&a=%2F..%2F', 'the query is forwarded as sent');
});

t.test('67 meta: for every path payload, the route the gateway authorised is the route of the path the upstream got', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  const payloads = [
    '/public/../admin/users', '/public/%2e%2e/admin/users', '/public/.%2e/admin/users', '/public/%2e%2e%2fadmin/users',
    '/public%2F..%2Fadmin/users', '/admin%2fusers', '/public/%252e%252e/admin', '/%61dmin/users', '/%70ublic/x',
    '//admin/users', '/admin//users', '///admin', '/public//../admin', '/ADMIN/users', '/admin.', '/admin/', '/admin%20',
    '/admin%00', '/admin/users.json', '/admin%23x', '/admin/..;/', '/admin/users?x=/public/', '/public/x?/../admin',
    '/public/a/../../admin', '/public/%c3%a9/..', '/public/%C3%A9', '/public/%ff', '/public/~user/%7e', '/public/a;b/c',
    '/public/./././x', '/public/x/..', '/public/%2e', '/basic/../public/x', '/api/%2e%2e/public',
  ];
  const logsBefore = () => gw.logs.filter((l) => l.msg === 'request').length;
  let forwarded = 0;
  for (const p of payloads) {
    for (const headers of [{}, ADMIN]) {
      const before = echo.received.length;
      const n = logsBefore();
      const r = await send(gw.url, p, { headers });
      t.ok(r.status < 500, `${p}: no 5xx (${r.status})`);
      if (echo.received.length === before) continue;
      forwarded++;
      const got = echo.received.at(-1)?.url ?? '';
      // The upstream's own reading of what it got (decode once) must be canonical and land in
      // the same route the gateway authorised.
      const upstreamView = normalizeTarget(got);
      t.ok(upstreamView.ok, `${p}: upstream path ${got} is well-formed`);
      if (!upstreamView.ok) continue;
      t.equal(upstreamView.path.split('?')[0], decodeURIComponent(got.split('?')[0] ?? ''), `${p}: what the upstream got is already canonical`);
      const firstSegment = upstreamView.path.split('/')[1];
      const line = gw.logs.filter((l) => l.msg === 'request').slice(n).at(-1);
      t.equal(line?.route, firstSegment, `${p}: authorised route ${String(line?.route)} = upstream's route`);
      if (firstSegment === 'admin') t.equal(echo.received.at(-1)?.headers['x-auth-user'], 'root', `${p}: admin only with credentials`);
    }
  }
  t.ok(forwarded > 10, `${forwarded} forwarded requests compared`);
});

t.test('68 prefix rewrite: stripPath cannot be escaped, separators stay encoded', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, threatConfig(echo.url, { routes: [{ name: 'svc', match: { path: '/svc/**' }, upstream: `${echo.url}/tenants/a/api`, auth: 'anonymous', stripPath: '/svc' }] }), { files: { 'users.yaml': 'users: {}\n' } });
  for (const p of ['/svc/a%2F..%2Fadmin%3F', '/svc/a%2Fb%23', '/svc/%2e%2e/%2e%2e/admin', '/svc/..%2f..%2fadmin']) {
    const r = await send(gw.url, p);
    t.equal(r.status, 400, p);
  }
  const esc = await send(gw.url, '/svc/../admin/x');
  t.equal(esc.status, 401, '/svc/../admin is the admin route');
  t.equal(echo.received.length, 0, 'NF');
  const ok = await send(gw.url, '/svc/b%3Fx%23y/c?q=1');
  t.equal(ok.status, 200);
  t.equal(echo.received[0]?.url, '/tenants/a/api/b%3Fx%23y/c?q=1', '? and # stay encoded inside the tenant prefix');
  const up = await send(gw.url, '/svc/x/../../y');
  t.equal(up.status, 404, '/svc/x/../../y is /y: no route, never /tenants/a/y');
  t.equal(echo.received.length, 1);
});

t.test('69 absolute-form and odd request targets', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const targets = [
    `GET http://internal-admin:8080/admin HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    `GET http://${host}/public/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    `GET @evil.test/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    `GET public/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  ];
  for (const raw of targets) t.equal(statusOf(await sendRaw(gw.url, raw)), 400, raw.split('\r\n')[0]);
  const connect = await sendRaw(gw.url, 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n');
  t.notOk([200, 101].includes(statusOf(connect)), `CONNECT is never tunnelled (${connect.split('\r\n')[0] || 'closed'})`);
  t.equal(echo.received.length, 0, 'NF');
});

t.test('70 WebSocket upgrades get the same normalisation and authentication', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const seen: { url: string; headers: Record<string, unknown> }[] = [];
  wss.on('connection', (socket, req) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    socket.on('message', (m) => socket.send(`echo:${m.toString()}`));
  });
  t.teardown(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
  const upstream = `http://127.0.0.1:${(wss.address() as { port: number }).port}`;
  const { gw, host } = await startThreatGateway(t, { upstream });
  const upgrade = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

  const anon = await sendRaw(gw.url, upgrade('/ws/chat'));
  t.equal(statusOf(anon), 401, 'no credentials: 401');
  t.notMatch(anon, /101 Switching/, 'never a 101');
  t.equal(statusOf(await sendRaw(gw.url, upgrade('/public/../ws/chat'))), 401, 'dot segments are resolved for upgrades too');
  t.equal(statusOf(await sendRaw(gw.url, upgrade('/public/%2e%2e/ws/chat', `X-API-Key: ${KEY_ALICE}\r\n`))), 400, 'encoded dot segment');
  t.equal(statusOf(await sendRaw(gw.url, upgrade('/ws/chat', 'X-API-Key: wrong\r\n'))), 401, 'wrong key');
  t.equal(statusOf(await sendRaw(gw.url, upgrade('/public/chat'))), 404, 'a route without websocket: true never upgrades');
  t.equal(seen.length, 0, 'NF');

  const ws = new WebSocket(`ws://${host}/public/../ws/chat?room=1`, { headers: { 'x-api-key': KEY_ALICE, 'x-auth-user': 'root' } });
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.send('hi');
  const reply = await new Promise<string>((resolve) => ws.once('message', (m) => resolve(m.toString())));
  t.equal(reply, 'echo:hi', 'tunnelled after authentication');
  t.equal(seen[0]?.url, '/ws/chat?room=1', 'the upstream gets the normalised path');
  t.equal(seen[0]?.headers['x-auth-user'], 'alice', 'and the gateway-set identity');
  t.notOk(seen[0]?.headers['x-api-key'], 'the consumed key is not forwarded');
});

t.test('71 method-scoped rules', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  t.equal((await send(gw.url, '/ro/x')).status, 200, 'GET allowed');
  t.equal((await send(gw.url, '/ro/x', { method: 'HEAD' })).status, 200, 'HEAD follows GET');
  t.equal(echo.received.length, 2);
  const refused: [string, Record<string, string>][] = [
    ['OPTIONS', {}],
    ['OPTIONS', { origin: 'https://evil.test', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'x-api-key' }],
    ['POST', { 'x-http-method-override': 'GET' }],
    ['DELETE', { 'x-http-method-override': 'GET', 'x-api-key': KEY_ALICE }],
    ['PUT', {}],
  ];
  for (const [method, headers] of refused) {
    const r = await send(gw.url, '/ro/x', { method, headers });
    t.equal(r.status, 404, `${method} ${JSON.stringify(headers)} → no route`);
  }
  t.equal((await send(gw.url, '/ro/x', { method: 'TRACE' })).status, 405, 'TRACE → 405');
  t.equal((await send(gw.url, '/public/x', { method: 'TRACE' })).status, 405, 'TRACE refused on every route');
  t.equal(statusOf(await sendRaw(gw.url, `get /ro/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`)), 400, 'lower-case method');
  t.equal(echo.received.length, 2, 'NF');
  // Where a route takes every method, the override headers are removed before forwarding.
  const ov = await send(gw.url, '/public/x', { method: 'POST', headers: { 'x-http-method-override': 'DELETE', 'x-method-override': 'DELETE', 'x-http-method': 'DELETE', 'content-type': 'text/plain' }, body: 'x' });
  t.equal(ov.status, 200);
  const h = echo.received.at(-1)?.headers ?? {};
  t.equal(echo.received.at(-1)?.method, 'POST');
  t.notOk(h['x-http-method-override'] ?? h['x-method-override'] ?? h['x-http-method'], 'override headers stripped');
});
