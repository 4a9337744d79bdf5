// THREATS J (72-79): identity headers, forwarded headers, hop-by-hop, consumed credentials,
// upstream TLS. Every case looks at what the echo upstream actually received.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send, sendRaw } from '../helpers/http.js';
import { basic, countHeader, KEY_ALICE, PASSWORD, startThreatGateway, statusOf, threatConfig } from './_fixtures.js';

const ALICE = { 'x-api-key': KEY_ALICE };
const MANAGED = ['x-auth-user', 'x-auth-email', 'x-auth-groups', 'x-auth-scopes', 'x-auth-method', 'x-auth-mfa'];

t.test('72 client-supplied identity headers never reach the upstream', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  const spoof = { 'x-auth-user': 'admin', 'x-auth-roles': 'admin', 'x-auth-groups': 'admin', 'x-auth-mfa': 'true', 'x-auth-assertion': 'forged' };
  t.equal((await send(gw.url, '/public/x', { headers: spoof })).status, 200);
  const pub = echo.received[0];
  t.same(Object.keys(pub?.headers ?? {}).filter((h) => h.startsWith('x-auth')), [], 'no X-Auth-* on an anonymous route');

  t.equal((await send(gw.url, '/api/x', { headers: { ...spoof, ...ALICE } })).status, 200);
  const api = echo.received[1];
  const raw = api?.rawHeaders ?? [];
  for (const h of MANAGED) t.equal(countHeader(raw, h), 1, `exactly one ${h}`);
  t.equal(api?.headers['x-auth-user'], 'alice');
  t.equal(api?.headers['x-auth-groups'], 'staff');
  t.equal(api?.headers['x-auth-mfa'], 'false');
  t.equal(countHeader(raw, 'x-auth-roles'), 0, 'unmanaged X-Auth-* are stripped too');
  t.equal(countHeader(raw, 'x-auth-assertion'), 0);
});

t.test('73 alias spellings of managed headers are dropped', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const aliases = ['X_Auth_User: admin', 'X.Auth.User: admin', 'x-auth-user: admin', 'X-AUTH-USER: admin', 'X-Auth-User: admin', 'X-Auth-User: admin2',
    'x_auth_groups: admin', 'X-Auth_Groups: admin', 'X.AUTH-MFA: true', 'X-Forwarded-User: admin'];
  const raw = `GET /api/x HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\n${aliases.join('\r\n')}\r\nConnection: close\r\n\r\n`;
  t.equal(statusOf(await sendRaw(gw.url, raw)), 200);
  const rec = echo.received[0];
  const names = (rec?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  t.equal(countHeader(rec?.rawHeaders ?? [], 'x-auth-user'), 1);
  t.equal(rec?.headers['x-auth-user'], 'alice');
  t.equal(rec?.headers['x-auth-groups'], 'staff');
  t.equal(rec?.headers['x-auth-mfa'], 'false');
  t.same(names.filter((n) => /^x[-_.]auth[-_.]/.test(n) && !MANAGED.includes(n)), [], 'no alias spelling left');
  t.same(names.filter((n) => MANAGED.includes(n)).sort(), [...MANAGED].sort(), 'each managed header once');
  t.equal(countHeader(rec?.rawHeaders ?? [], 'x-forwarded-user'), 0, 'X-Forwarded-User from an untrusted peer is removed');
  t.same(names.filter((n) => /^x[-_.]forwarded[-_.]/.test(n)).sort(), ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'], 'only the gateway-set X-Forwarded-*');
});

t.test('74 Connection cannot remove the headers the gateway sets', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const r1 = await send(gw.url, '/api/x', { headers: { ...ALICE, connection: 'close, X-Auth-User' } });
  t.equal(r1.status, 200);
  t.equal(echo.received[0]?.headers['x-auth-user'], 'alice');
  const r2 = await send(gw.url, '/api/x', { headers: { ...ALICE, connection: 'keep-alive, x-auth-roles, X-Forwarded-For, X-Auth-Groups, X-Auth-Method' } });
  t.equal(r2.status, 200);
  const h2 = echo.received[1]?.headers ?? {};
  t.equal(h2['x-auth-user'], 'alice');
  t.equal(h2['x-auth-groups'], 'staff');
  t.equal(h2['x-auth-method'], 'apikey');
  t.equal(h2['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is rebuilt, not removed');
  t.notOk(h2.connection?.toLowerCase().includes('x-auth'), 'the client Connection header is not forwarded');

  // Two requests on one keep-alive connection, both naming X-Auth-User in Connection.
  const one = `GET /api/one HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\nConnection: X-Auth-User\r\n\r\n`;
  const two = `GET /api/two HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\nConnection: close, X-Auth-User, X-Auth-Groups\r\n\r\n`;
  const out = await sendRaw(gw.url, one + two);
  t.equal(out.match(/HTTP\/1\.1 200/g)?.length, 2, 'both pipelined requests answered');
  const [p1, p2] = echo.received.slice(2);
  t.equal(p1?.url, '/api/one');
  t.equal(p1?.headers['x-auth-user'], 'alice');
  t.equal(p2?.url, '/api/two');
  t.equal(p2?.headers['x-auth-user'], 'alice');
  t.equal(p2?.headers['x-auth-groups'], 'staff');
});

t.test('75 Connection naming framing headers never lets a body become a second request', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const smuggled = `GET /admin/users HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
  for (const connection of ['Content-Length', 'close, Content-Length', 'Transfer-Encoding', 'Host']) {
    const before = echo.received.length;
    const raw = `POST /api/x HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\nContent-Type: text/plain\r\nConnection: ${connection}\r\nContent-Length: ${Buffer.byteLength(smuggled)}\r\n\r\n${smuggled}`;
    const out = await sendRaw(gw.url, raw);
    const status = statusOf(out);
    t.ok(status === 200 || status === 400, `Connection: ${connection} → ${status}`);
    const got = echo.received.slice(before);
    t.ok(got.every((r) => r.url === '/api/x'), 'the upstream never parses /admin/users');
    if (status === 200) {
      t.equal(got.length, 1, 'exactly one request upstream');
      t.equal(got[0]?.body, smuggled, 'the framing was preserved: the smuggled bytes stayed body');
    }
  }
  t.notOk(echo.received.some((r) => r.url.startsWith('/admin')), 'NF');
});

t.test('76 forwarded-context headers from an untrusted peer are ignored and rebuilt', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t, {
    routes: [{ name: 'internal', match: { host: 'internal.test', path: '/int/**' }, upstream: 'http://127.0.0.1:9', auth: 'anonymous' }],
  });
  const spoof = {
    'x-forwarded-for': '10.0.0.1', 'x-real-ip': '127.0.0.1', forwarded: 'for=127.0.0.1;proto=https;host=admin.gw.test',
    'x-forwarded-proto': 'https', 'x-forwarded-port': '443', 'x-forwarded-prefix': '/public', 'x-original-url': '/public/x',
    'x-rewrite-url': '/public/x', 'x_forwarded_proto': 'https', 'x-forwarded-host': 'internal.test', 'x-forwarded-uri': '/public/x',
    'x-client-ip': '10.0.0.1', 'true-client-ip': '10.0.0.1', 'x.forwarded.for': '10.9.9.9',
  };
  const adm = await send(gw.url, '/admin/users', { headers: spoof });
  t.equal(adm.status, 401, 'X-Original-URL / X-Rewrite-URL / X-Forwarded-Prefix do not pick the route');
  const int = await send(gw.url, '/int/x', { headers: spoof });
  t.equal(int.status, 404, 'X-Forwarded-Host from an untrusted peer does not pick a host route');
  t.equal(echo.received.length, 0, 'NF');

  t.equal((await send(gw.url, '/public/x', { headers: spoof })).status, 200);
  const h = echo.received[0]?.headers ?? {};
  t.equal(h['x-forwarded-for'], '127.0.0.1');
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-forwarded-host'], host);
  for (const name of ['x-real-ip', 'forwarded', 'x-forwarded-port', 'x-forwarded-prefix', 'x-original-url', 'x-rewrite-url', 'x_forwarded_proto', 'x-forwarded-uri', 'x-client-ip', 'true-client-ip', 'x.forwarded.for']) {
    t.notOk(h[name], `${name} not forwarded`);
  }
});

t.test('78 credentials the gateway consumed are not forwarded (unless passCredentials)', async (t) => {
  const echo = await startTestEcho(t);
  const config = threatConfig(echo.url, {
    authenticators: { tok: { type: 'token' }, selfjwt: { type: 'jwt', issuer: 'self' }, web: { type: 'session' } },
    routes: [
      { name: 'bearer', match: { path: '/bearer/**' }, upstream: echo.url, auth: ['selfjwt', 'tok'] },
      { name: 'web', match: { path: '/web/**' }, upstream: echo.url, auth: ['web'] },
      { name: 'pass', match: { path: '/pass/**' }, upstream: echo.url, auth: ['keys', 'staff'], passCredentials: true },
    ],
  });
  const { hashPassword } = await import('../../src/credentials/passwords.js');
  const gw = await startTestGateway(t, config, { files: { 'users.yaml': `users:\n  alice: { password: "${await hashPassword(PASSWORD)}", groups: [staff] }\n` } });
  const json = { 'content-type': 'application/json' };
  const creds = JSON.stringify({ username: 'alice', password: PASSWORD });
  // [what, path, headers, headers that must be gone, the secret that must appear nowhere upstream]
  const cases: [string, string, Record<string, string>, string[], string][] = [
    ['basic', '/basic/x', { authorization: basic('alice', PASSWORD) }, ['authorization'], basic('alice', PASSWORD).slice(6)],
    ['apikey', '/api/x', { 'x-api-key': KEY_ALICE, cookie: 'theme=dark' }, ['x-api-key'], KEY_ALICE],
  ];
  const jwt = await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: creds });
  const access = jwt.status === 200 ? jwt.json<{ access: string }>().access : '';
  if (jwt.status === 200) cases.push(['jwt', '/bearer/x', { authorization: `Bearer ${access}` }, ['authorization'], access]);
  else t.fail(`could not obtain a gateway JWT (${jwt.status})`);
  const tok = await send(gw.url, '/.auth/token', { method: 'POST', headers: json, body: creds });
  const token = tok.status === 200 ? tok.json<{ token: string }>().token : '';
  if (tok.status === 200) cases.push(['token', '/bearer/x', { authorization: `Token ${token}` }, ['authorization'], token]);
  else t.fail(`could not obtain an API token (${tok.status})`);
  for (const [what, path, headers, gone, secret] of cases) {
    const r = await send(gw.url, path, { headers });
    t.equal(r.status, 200, `${what}: ${r.body}`);
    const h = echo.received.at(-1)?.headers ?? {};
    t.equal(h['x-auth-user'], 'alice', `${what}: identity set`);
    for (const g of gone) t.notOk(h[g], `${what}: ${g} not forwarded`);
    t.notOk(JSON.stringify(echo.received.at(-1)).includes(secret), `${what}: the secret appears nowhere upstream`);
  }
  t.equal(echo.received.find((r) => r.url === '/api/x')?.headers.cookie, 'theme=dark', 'unrelated cookies pass');

  const login = await send(gw.url, '/.auth/login', { method: 'POST', headers: json, body: creds });
  await t.test('session cookie', { skip: login.status === 404 ? 'no /.auth/login endpoint in this build' : false }, async (t) => {
    const sid = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
    t.match(sid, /^authgate_session=./, 'a session cookie was issued');
    const r = await send(gw.url, '/web/x', { headers: { cookie: `a=1; ${sid}; b=2` } });
    t.equal(r.status, 200);
    const h = echo.received.at(-1)?.headers ?? {};
    t.equal(h['x-auth-method'], 'session');
    t.equal(h.cookie, 'a=1; b=2', 'the session cookie is removed, the others kept');
  });

  const pass = await send(gw.url, '/pass/x', { headers: { authorization: basic('alice', PASSWORD) } });
  t.equal(pass.status, 200);
  t.equal(echo.received.at(-1)?.headers.authorization, basic('alice', PASSWORD), 'passCredentials: true forwards it');
});

/** A throwaway self-signed certificate for 127.0.0.1 (openssl CLI), or undefined without openssl. */
function selfSignedCert(): { key: Buffer; cert: Buffer } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TLS = selfSignedCert();

t.test('79 an upstream with a self-signed certificate gets 502 and never sees the request; upstreams never mix', { skip: TLS ? false : 'openssl is not available to make a certificate' }, async (t) => {
  const tls = TLS as { key: Buffer; cert: Buffer };
  let requests = 0;
  const https = createHttpsServer(tls, (_req, res) => { requests++; res.end('leaked'); });
  https.on('upgrade', (_req, socket) => { requests++; socket.destroy(); });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { https.closeAllConnections(); https.close(() => r()); }));
  const tlsUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  const a = await startTestEcho(t);
  const b = await startTestEcho(t);
  const { gw, host } = await startThreatGateway(t, {
    routes: [
      { name: 'tls', match: { path: '/tls/**' }, upstream: tlsUrl, auth: ['keys'] },
      { name: 'tlsws', match: { path: '/tlsws/**' }, upstream: tlsUrl, auth: ['keys'], websocket: true },
      { name: 'a', match: { path: '/a/**' }, upstream: `${a.url}/p`, auth: ['keys'], stripPath: '/a' },
      { name: 'b', match: { path: '/b/**' }, upstream: `${b.url}/p`, auth: ['keys'], stripPath: '/b' },
    ],
  });
  const r = await send(gw.url, '/tls/x', { headers: { ...ALICE, authorization: basic('alice', PASSWORD) } });
  t.equal(r.status, 502);
  t.equal(r.json().code, 'upstream_unavailable');
  t.notMatch(r.body, /self.signed|certificate|DEPTH_ZERO|127\.0\.0\.1/i, 'no TLS internals in the body');
  const ws = await sendRaw(gw.url, `GET /tlsws/x HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  t.equal(statusOf(ws), 502, 'the WebSocket path verifies certificates too');
  t.equal(requests, 0, 'the MITM upstream never received a request (no credentials sent)');

  for (let i = 0; i < 6; i++) {
    const which = i % 2 === 0 ? 'a' : 'b';
    t.equal((await send(gw.url, `/${which}/q`, { headers: ALICE })).status, 200);
  }
  t.same(a.received.map((x) => x.url), ['/p/q', '/p/q', '/p/q'], 'route a only reached upstream a');
  t.same(b.received.map((x) => x.url), ['/p/q', '/p/q', '/p/q'], 'route b only reached upstream b');
});
