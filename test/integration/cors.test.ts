// CORS at the gateway (SPEC 3 route `cors`, THREATS 71): preflights answered by the gateway and
// never forwarded (unless `passthrough`), never for an unlisted origin; actual responses carry
// the gateway's Access-Control-Allow-* for listed origins only, whatever the upstream says.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { startTestGateway, type Teardown } from '../helpers/gateway.js';
import { call, PASSWORDS, usersFile } from '../sessions/_browser.js';

/** An upstream that records requests and answers with a permissive CORS header of its own. */
async function permissiveUpstream(t: Teardown): Promise<{ url: string; received: { method: string; url: string; headers: IncomingHttpHeaders }[] }> {
  const received: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true', vary: 'Accept-Encoding' });
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

const APP = 'https://app.example.com';
const basic = `Basic ${Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64')}`;

async function setup(t: Teardown) {
  const up = await permissiveUpstream(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    authenticators: { staff: { type: 'basic', realm: 'staff' } },
    routes: [
      {
        name: 'api', match: { path: '/api/**', methods: ['GET', 'POST'] }, upstream: up.url, auth: ['staff'],
        cors: { origins: [APP, 'https://*.trusted.test'], methods: ['GET', 'POST'], headers: ['content-type', 'authorization'], credentials: true, maxAge: '10m' },
      },
      { name: 'open', match: { path: '/open/**' }, upstream: up.url, auth: ['staff'], cors: 'passthrough' },
      { name: 'plain', match: { path: '/plain/**' }, upstream: up.url, auth: ['staff'] },
    ],
  }, { files: { 'users.yaml': await usersFile() } });
  return { gw, up };
}

const preflight = (origin: string, method = 'POST', headers?: string): Record<string, string> => ({
  origin,
  'access-control-request-method': method,
  ...(headers !== undefined ? { 'access-control-request-headers': headers } : {}),
});

t.test('a listed origin gets a 204 from the gateway; the upstream never sees the preflight', async (t) => {
  const { gw, up } = await setup(t);
  const r = await call(`${gw.url}/api/orders`, { method: 'OPTIONS', headers: preflight(APP, 'POST', 'Content-Type, Authorization') });
  t.equal(r.status, 204);
  t.equal(r.headers['access-control-allow-origin'], APP, 'the origin itself, never *');
  t.equal(r.headers['access-control-allow-credentials'], 'true');
  t.equal(r.headers['access-control-allow-methods'], 'GET, POST');
  t.equal(r.headers['access-control-allow-headers'], 'content-type, authorization');
  t.equal(r.headers['access-control-max-age'], '600');
  t.match(r.headers.vary, /Origin/);
  // A subdomain of a wildcard pattern is listed too.
  const sub = await call(`${gw.url}/api/orders`, { method: 'OPTIONS', headers: preflight('https://eu.trusted.test', 'GET') });
  t.equal(sub.status, 204);
  t.equal(sub.headers['access-control-allow-origin'], 'https://eu.trusted.test');
  t.equal(up.received.length, 0, 'no preflight reached the upstream');
});

t.test('an unlisted origin, method or header gets no CORS header at all, and nothing is forwarded', async (t) => {
  const { gw, up } = await setup(t);
  const refused: [string, Record<string, string>][] = [
    ['unlisted origin', preflight('https://evil.test')],
    ['bare domain of a *. pattern', preflight('https://trusted.test')],
    ['look-alike suffix', preflight('https://app.example.com.evil.test')],
    ['other scheme', preflight('http://app.example.com')],
    ['other port', preflight('https://app.example.com:8443')],
    ['Origin: null', preflight('null')],
    ['origin with a path', preflight(`${APP}/x`)],
    ['trailing slash', preflight(`${APP}/`)],
    ['upper case (not a serialized origin)', preflight('https://APP.example.com')],
    ['explicit default port', preflight('https://app.example.com:443')],
    ['two Origin values', preflight(`${APP}, https://evil.test`)],
    ['a 10 kB origin under a wildcard', preflight(`https://${'a'.repeat(10_000)}.trusted.test`)],
    ['method not allowed', preflight(APP, 'DELETE')],
    ['malformed method', preflight(APP, 'PO ST')],
    ['header not allowed', preflight(APP, 'POST', 'content-type, x-evil')],
  ];
  for (const [what, headers] of refused) {
    const r = await call(`${gw.url}/api/orders`, { method: 'OPTIONS', headers });
    // 403 from the route's policy; a method no route takes (DELETE here) finds no route: 404.
    t.ok(r.status === 403 || r.status === 404, `${what}: ${r.status}`);
    t.match(r.headers['content-type'], /application\/problem\+json/, what);
    t.notOk(r.headers['access-control-allow-origin'], `${what}: no ACAO`);
    t.notOk(r.headers['access-control-allow-credentials'], `${what}: no ACAC`);
  }
  t.equal(up.received.length, 0, 'nothing reached the upstream');
});

t.test('actual responses: the gateway\'s headers for a listed origin, the upstream\'s dropped', async (t) => {
  const { gw, up } = await setup(t);
  const ok = await call(`${gw.url}/api/orders`, { headers: { origin: APP, authorization: basic } });
  t.equal(ok.status, 200);
  t.equal(ok.headers['access-control-allow-origin'], APP, 'the upstream\'s * is replaced');
  t.equal(ok.headers['access-control-allow-credentials'], 'true');
  t.match(ok.headers.vary, /Accept-Encoding, Origin/);
  t.equal(up.received.at(-1)?.headers['x-auth-user'], 'alice');

  const evil = await call(`${gw.url}/api/orders`, { headers: { origin: 'https://evil.test', authorization: basic } });
  t.equal(evil.status, 200, 'CORS is the browser\'s rule; the request itself is authenticated as usual');
  t.notOk(evil.headers['access-control-allow-origin'], 'but an unlisted origin is never granted (not even the upstream\'s *)');
  t.notOk(evil.headers['access-control-allow-credentials']);

  const anon = await call(`${gw.url}/api/orders`, { headers: { origin: APP } });
  t.equal(anon.status, 401, 'no credentials: the chain refuses');
  t.equal(anon.headers['access-control-allow-origin'], APP, 'and the calling page may read why');
  t.equal(up.received.length, 2, 'only the two authenticated requests were forwarded');
});

t.test('cors: passthrough forwards preflights unauthenticated; other OPTIONS still need credentials', async (t) => {
  const { gw, up } = await setup(t);
  const r = await call(`${gw.url}/open/x`, { method: 'OPTIONS', headers: { ...preflight('https://any.test'), 'x-auth-user': 'admin', cookie: 'authgate_session=x' } });
  t.equal(r.status, 200, 'the upstream answered');
  t.equal(up.received.length, 1);
  const seen = up.received[0]!;
  t.equal(seen.method, 'OPTIONS');
  t.notOk(seen.headers['x-auth-user'], 'no identity, and the spoofed one is stripped');
  t.notOk(seen.headers.cookie, 'credentials are not forwarded');
  const plainOptions = await call(`${gw.url}/open/x`, { method: 'OPTIONS' });
  t.equal(plainOptions.status, 401, 'an OPTIONS that is no preflight goes through the chain');
  t.equal(up.received.length, 1);
});

t.test('without cors a preflight goes through the chain as any request (401, not forwarded)', async (t) => {
  const { gw, up } = await setup(t);
  const r = await call(`${gw.url}/plain/x`, { method: 'OPTIONS', headers: preflight(APP) });
  t.equal(r.status, 401);
  t.notOk(r.headers['access-control-allow-origin']);
  t.equal(up.received.length, 0);
});
