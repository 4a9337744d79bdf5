// Issue 9 (items 1-5 and "also fix"): request-path defects reproduced from outside against a
// running gateway. Untrusted clients connect from 127.0.0.2, the trusted proxy is 127.0.0.1.
// Every case asserts what the upstream received (or that it received nothing).
import type { IncomingHttpHeaders } from 'node:http';
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { hashPassword } from '../../src/credentials/passwords.js';
import { WebSocketServer } from 'ws';
import { send } from '../helpers/http.js';
import { startTestEcho, startTestGateway, waitFor, type Teardown } from '../helpers/gateway.js';
import { documentedNginxConfig, documentedNginxOriginalUrlConfig } from './_nginx.js';
import { basic, KEY_ADMIN, KEY_ALICE, PASSWORD, startThreatGateway, statusOf, threatConfig } from './_fixtures.js';

const UNTRUSTED = '127.0.0.2';

let users: string | undefined;
async function usersYaml(): Promise<string> {
  users ??= `users:\n  alice: { email: alice@example.test, password: "${await hashPassword(PASSWORD)}", groups: [staff] }\n`;
  return users;
}
const TRUSTED = { trustedProxies: ['127.0.0.1/32'] };

/** Raw bytes from a chosen local address; resolves with what the server answered before closing (or the timeout). */
function rawFrom(localAddress: string, base: string, bytes: string, timeoutMs = 3000): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), localAddress });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // A 101 keeps the tunnel open: the status line is all the test needs.
      if (/^HTTP\/1\.1 101/.test(Buffer.concat(chunks).toString('latin1'))) socket.destroy();
    });
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
    socket.on('error', (err) => { clearTimeout(timer); if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1')); else reject(err); });
  });
}

function upgradeRequest(host: string, path: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;
}

/** A WebSocket upstream that records every handshake it accepted. */
async function startWsUpstream(t: Teardown): Promise<{ url: string; seen: { url: string; headers: IncomingHttpHeaders }[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  wss.on('connection', (_socket, req) => { seen.push({ url: req.url ?? '', headers: req.headers }); });
  t.teardown(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
  return { url: `http://127.0.0.1:${(wss.address() as { port: number }).port}`, seen };
}

t.test('1 every X-Forwarded-* spelling and Forwarded from an untrusted peer is removed; only the gateway set arrives', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t, { server: TRUSTED });
  const spoof = `X-Forwarded-User: admin\r\nX-Forwarded-Groups: admin\r\nX-Forwarded-Email: admin@example.test\r\nX-Forwarded-Path: /admin\r\n` +
    `X_Forwarded_User: admin2\r\nx.forwarded.groups: admin\r\nX-FORWARDED-PREFERRED-USERNAME: admin\r\nForwarded: for=10.0.0.1;host=admin.test\r\n` +
    `X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: admin.test\r\nX-Forwarded-Proto: https\r\n`;
  for (const [path, cred] of [['/public/x', ''], ['/basic/x', `Authorization: ${basic('alice', PASSWORD)}\r\nX-Auth-User: admin\r\n`]] as const) {
    const out = await rawFrom(UNTRUSTED, gw.url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${cred}${spoof}Connection: close\r\n\r\n`);
    t.equal(statusOf(out), 200, path);
    const rec = echo.received.at(-1);
    const names = (rec?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    t.same(names.filter((n) => /^x[-_.]forwarded[-_.]/.test(n) || n === 'forwarded').sort(), ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'], `${path}: only the gateway's X-Forwarded-*`);
    t.equal(rec?.headers['x-forwarded-for'], UNTRUSTED, 'X-Forwarded-For is the peer');
    t.equal(rec?.headers['x-forwarded-host'], host, 'X-Forwarded-Host is the Host');
    t.equal(rec?.headers['x-forwarded-proto'], 'http');
    for (const n of ['x-forwarded-user', 'x-forwarded-groups', 'x-forwarded-email', 'x-forwarded-path', 'x_forwarded_user', 'forwarded']) t.notOk(rec?.headers[n], `${path}: ${n} not forwarded`);
  }
  t.equal(echo.received.at(-1)?.headers['x-auth-user'], 'alice', 'beside the real identity');
});

t.test('1 from a trusted proxy: X-Forwarded-For/Proto/Host believed, the appended hop is the proxy itself, nothing else kept', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t, { server: TRUSTED });
  const r = await send(gw.url, '/public/x', { headers: { 'x-forwarded-for': '10.9.9.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.test', 'x-forwarded-user': 'admin', 'x-forwarded-groups': 'admin', forwarded: 'for=10.9.9.9' } });
  t.equal(r.status, 200);
  const h = echo.received.at(-1)?.headers ?? {};
  t.equal(h['x-forwarded-for'], '10.9.9.9, 127.0.0.1', "the appended hop is the peer's own address");
  t.equal(h['x-forwarded-proto'], 'https');
  t.equal(h['x-forwarded-host'], 'app.example.test');
  t.notOk(h['x-forwarded-user'], 'X-Forwarded-User is not believed even from a trusted proxy');
  t.notOk(h['x-forwarded-groups']);
  t.notOk(h.forwarded);
  t.ok(host);
});

t.test('2 /verify: exactly one header set, with a method', async (t) => {
  const { gw, host } = await startThreatGateway(t, { server: TRUSTED });
  const cases: [string, Record<string, string>][] = [
    ['X-Original-URL plus a client X-Forwarded-Uri', { 'x-original-url': `http://${host}/admin/users`, 'x-original-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-host': host }],
    ['X-Forwarded-* plus a client X-Original-URL', { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-forwarded-uri': '/admin/users', 'x-original-url': '/public/x' }],
    ['X-Original-URL without a method', { 'x-original-url': `http://${host}/public/x` }],
    ['X-Forwarded-* without a method', { 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-forwarded-uri': '/public/x' }],
    ['a cross-site POST described without its method', { 'x-forwarded-host': host, 'x-forwarded-uri': '/public/x', origin: 'https://evil.test' }],
  ];
  for (const [what, headers] of cases) {
    const r = await send(gw.url, '/.auth/verify', { headers });
    t.equal(r.status, 400, what);
    t.equal(r.json().code, 'bad_request');
    t.notOk(r.headers['x-auth-user']);
  }
  const ok = await send(gw.url, '/.auth/verify', { headers: { 'x-original-url': `http://${host}/admin/users`, 'x-original-method': 'GET', 'x-api-key': KEY_ADMIN } });
  t.equal(ok.status, 200, 'one complete set is answered');
  t.equal(ok.headers['x-auth-user'], 'root');
});

t.test('3 a session-authenticated WebSocket upgrade passes the origin rule; every non-safe method gets the CSRF check', async (t) => {
  const ws = await startWsUpstream(t);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    server: TRUSTED,
    users: { file: 'users.yaml' },
    authenticators: { web: { type: 'session' }, staff: { type: 'basic', realm: 'staff' } },
    routes: [
      { name: 'live', match: { path: '/live/**' }, upstream: ws.url, auth: ['web'], websocket: true },
      { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'] },
      { name: 'basic', match: { path: '/basic/**' }, upstream: echo.url, auth: ['staff'] },
    ],
  }, { files: { 'users.yaml': await usersYaml() } });
  const host = new URL(gw.url).host;
  const login = await send(gw.url, '/.auth/login', { method: 'POST', headers: { 'content-type': 'application/json', origin: gw.url }, body: JSON.stringify({ username: 'alice', password: PASSWORD }) });
  t.equal(login.status, 200);
  const sid = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';

  const hijack = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/live/feed', { Cookie: sid, Origin: 'https://evil.test', 'Sec-Fetch-Site': 'cross-site' }));
  t.equal(statusOf(hijack), 403, 'cross-site upgrade with the session cookie: 403');
  t.match(hijack, /"code":"csrf"/);
  const noOrigin = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/live/feed', { Cookie: sid }));
  t.equal(statusOf(noOrigin), 403, 'an upgrade without an Origin is refused like an unsafe request');
  t.equal(ws.seen.length, 0, 'NF: the upstream accepted no handshake');
  const sameWs = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/live/feed', { Cookie: sid, Origin: gw.url }));
  t.equal(statusOf(sameWs), 101, 'same-origin upgrade is tunnelled');
  t.equal(ws.seen[0]?.headers['x-auth-user'], 'alice');

  for (const method of ['DELETE', 'PATCH']) {
    const r = await send(gw.url, '/app/x', { method, headers: { cookie: sid, origin: 'https://evil.test' } });
    t.equal(r.status, 403, `${method} cross-site with the session: 403`);
    t.equal(r.json().code, 'csrf');
  }
  t.equal(echo.received.length, 0, 'NF');
  // Methods beyond the four (WebDAV and friends), as a trusted proxy describes them to /verify.
  for (const method of ['PROPFIND', 'MKCOL', 'PURGE', 'LOCK']) {
    const r = await send(gw.url, '/.auth/verify', { headers: { 'x-forwarded-method': method, 'x-forwarded-host': host, 'x-forwarded-uri': '/app/x', cookie: sid, origin: 'https://evil.test' } });
    t.equal(r.status, 403, `${method} cross-site with the session: 403`);
    t.equal(r.json().code, 'csrf');
    t.notOk(r.headers['x-auth-user'], 'no identity for the proxy to forward');
  }
  const same = await send(gw.url, '/.auth/verify', { headers: { 'x-forwarded-method': 'PROPFIND', 'x-forwarded-host': host, 'x-forwarded-uri': '/app/x', cookie: sid, origin: gw.url } });
  t.equal(same.status, 200, 'same-origin PROPFIND is allowed');

  // Browsers re-send cached Basic credentials cross-site.
  const auth = { authorization: basic('alice', PASSWORD) };
  for (const headers of [{ 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.test' }, { origin: 'null' }]) {
    const r = await send(gw.url, '/basic/x', { method: 'POST', headers: { ...auth, ...headers, 'content-type': 'text/plain' }, body: 'x' });
    t.equal(r.status, 403, `Basic POST ${JSON.stringify(headers)}: 403`);
    t.equal(r.json().code, 'csrf');
  }
  t.equal(echo.received.length, 0, 'NF: no cross-site Basic request reached the upstream');
  t.equal((await send(gw.url, '/basic/x', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'x' })).status, 200, 'an API client (no browser headers) passes');
  t.equal((await send(gw.url, '/basic/x', { method: 'POST', headers: { ...auth, origin: gw.url, 'content-type': 'text/plain' }, body: 'x' })).status, 200, 'same origin passes');
  t.equal((await send(gw.url, '/basic/x', { headers: { ...auth, 'sec-fetch-site': 'cross-site' } })).status, 200, 'a cross-site GET (safe) passes');
  t.equal(echo.received.length, 3);
});

t.test('4 upgrades take address and host as HTTP does (rightmost untrusted X-Forwarded-For, last X-Forwarded-Host)', async (t) => {
  const ws = await startWsUpstream(t);
  const echo = await startTestEcho(t);
  const config = threatConfig(echo.url, {
    server: TRUSTED,
    routes: [
      { name: 'internal-ws', match: { host: 'internal.example.test', path: '/sock/**' }, upstream: ws.url, auth: 'anonymous', websocket: true },
      { name: 'sock', match: { path: '/sock/**' }, upstream: ws.url, auth: ['staff'], websocket: true },
    ],
  });
  const gw = await startTestGateway(t, { ...config, login: { lockout: { maxFailures: 100, maxFailuresPerAddress: 3 } } }, { files: { 'users.yaml': await usersYaml() } });
  const host = new URL(gw.url).host;

  const hostSpoof = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/sock/x', { 'X-Forwarded-Host': 'internal.example.test, public.example.test' }));
  t.equal(statusOf(hostSpoof), 401, 'the client-written first X-Forwarded-Host entry does not pick the anonymous host route');
  t.equal(ws.seen.length, 0, 'NF');

  const bad = basic('alice', 'wrong password');
  for (let i = 0; i < 3; i++) {
    const out = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/sock/x', { Authorization: bad, 'X-Forwarded-For': '6.6.6.6, 10.1.1.1' }));
    t.equal(statusOf(out), 401, `bad upgrade ${i + 1}`);
  }
  const good = { authorization: basic('alice', PASSWORD) };
  const real = await send(gw.url, '/basic/x', { headers: { ...good, 'x-forwarded-for': '10.1.1.1' } });
  t.equal(real.status, 429, 'the real client (rightmost untrusted entry) is the one locked out');
  const named = await send(gw.url, '/basic/x', { headers: { ...good, 'x-forwarded-for': '6.6.6.6' } });
  t.equal(named.status, 200, 'the address the attacker wrote first is not');
  t.equal(echo.received.length, 1);
  t.equal(echo.received[0]?.headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
});

t.test('5 an API key read from the query is removed before forwarding; the rest of the query is kept byte for byte', async (t) => {
  const ws = await startWsUpstream(t);
  const echo = await startTestEcho(t);
  const digest = createHash('sha256').update(KEY_ALICE).digest('hex');
  const gw = await startTestGateway(t, threatConfig(echo.url, {
    authenticators: { qkeys: { type: 'apikey', queryParam: 'api_key', keys: [{ id: 'alice', hash: `sha256:${digest}`, user: 'alice' }] } },
    routes: [
      { name: 'q', match: { path: '/q/**' }, upstream: echo.url, auth: ['qkeys'] },
      { name: 'qpass', match: { path: '/qpass/**' }, upstream: echo.url, auth: ['qkeys'], passCredentials: true },
      { name: 'qws', match: { path: '/qws/**' }, upstream: ws.url, auth: ['qkeys'], websocket: true },
    ],
  }), { files: { 'users.yaml': await usersYaml() } });
  const host = new URL(gw.url).host;
  const key = encodeURIComponent(KEY_ALICE);
  const rest = `y=1&z=%41+b&empty=&flag&q=%e2%82%ac&x='quoted'`;
  for (const [path, expected] of [
    [`/q/x?api_key=${key}&${rest}`, `/q/x?${rest}`],
    [`/q/x?${rest}&api%5Fkey=${key}`, `/q/x?${rest}`],
    [`/q/x?api_key=${key}`, '/q/x'],
    [`/qpass/x?api_key=${key}&y=1`, `/qpass/x?api_key=${key}&y=1`],
  ]) {
    const r = await send(gw.url, path as string);
    t.equal(r.status, 200, path);
    t.equal(echo.received.at(-1)?.url, expected, `upstream got ${expected}`);
    t.equal(echo.received.at(-1)?.headers['x-auth-user'], 'alice');
  }
  t.notOk(echo.received.slice(0, 3).some((rec) => rec.url.includes(key)), 'the key appears in no forwarded URL');
  const out = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, `/qws/x?api_key=${key}&room=1`, { Origin: gw.url }));
  t.equal(statusOf(out), 101);
  t.equal(ws.seen[0]?.url, '/qws/x?room=1', 'the WebSocket upstream does not get the key either');
});

t.test('also: a trailing dot on Host does not skip a host route', async (t) => {
  const { gw, echo } = await startThreatGateway(t, {
    routes: [{ name: 'admin-host', match: { host: 'admin.example.test', path: '/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys'], require: { groups: ['admin'] } }],
  });
  for (const hostHeader of ['admin.example.test.', 'ADMIN.example.test..', `admin.example.test.:${new URL(gw.url).port}`]) {
    const r = await send(gw.url, '/public/x', { headers: { host: hostHeader } });
    t.equal(r.status, 401, `Host: ${hostHeader} matches the host route`);
  }
  t.equal(echo.received.length, 0, 'NF: the anonymous catch-all never served them');
});

t.test('also: server.paths.caseInsensitive and refuseMatrixParams, both ways', async (t) => {
  for (const paths of [undefined, { caseInsensitive: true, refuseMatrixParams: true }]) {
    const { gw, echo } = await startThreatGateway(t, {
      server: paths ? { paths } : {},
    });
    const upper = await send(gw.url, '/ADMIN/users');
    const matrix = await send(gw.url, '/admin;x/users');
    const encoded = await send(gw.url, '/admin%3bx/users');
    if (paths) {
      t.equal(upper.status, 401, 'caseInsensitive: /ADMIN/users is the admin route');
      t.equal(matrix.status, 400, 'refuseMatrixParams: a ; is refused');
      t.match(matrix.headers['content-type'], /^application\/problem\+json/);
      t.equal(encoded.status, 400, 'refuseMatrixParams: an encoded ; too');
      t.equal(echo.received.length, 0, 'NF');
      const ok = await send(gw.url, '/Admin/Users?x=1', { headers: { 'x-api-key': KEY_ADMIN } });
      t.equal(ok.status, 200);
      t.equal(echo.received.at(-1)?.url, '/Admin/Users?x=1', 'the upstream gets the path in its own case');
    } else {
      // Defaults: the path is case-sensitive and ';' an ordinary character (Node, nginx upstreams).
      t.equal(upper.status, 404, 'default: /ADMIN/users is not the admin route');
      t.equal(matrix.status, 404, 'default: /admin;x/users is not the admin route');
      t.equal(echo.received.length, 0);
    }
  }
});

t.test('also: Connection: Content-Length on a POST is answered 400 at once', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const started = Date.now();
  const out = await rawFrom(UNTRUSTED, gw.url, `POST /public/x HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello`, 10_000);
  t.equal(statusOf(out), 400);
  t.match(out, /application\/problem\+json/);
  t.ok(Date.now() - started < 5000, 'answered, not left hanging');
  t.equal(echo.received.length, 0, 'NF');
});

t.test('also: an upgrade carrying two credentials is refused as HTTP is', async (t) => {
  const ws = await startWsUpstream(t);
  const { gw, host } = await startThreatGateway(t, { upstream: ws.url });
  const out = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/ws/x?access_token=other', { 'X-API-Key': KEY_ALICE, Authorization: 'Bearer other' }));
  t.equal(statusOf(out), 400);
  t.equal(ws.seen.length, 0, 'NF');
  const single = await rawFrom('127.0.0.1', gw.url, upgradeRequest(host, '/ws/x', { 'X-API-Key': KEY_ALICE }));
  t.equal(statusOf(single), 101, 'one credential is tunnelled');
});

function findNginx(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) if (existsSync(candidate)) return candidate;
  try { return execFileSync('which', ['nginx'], { encoding: 'utf8' }).trim() || undefined; } catch { return undefined; }
}
const NGINX = findNginx();

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

/** Runs a real nginx with one of the documented configurations; resolves with its base URL. */
async function startNginx(t: Teardown, server: string): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-nginx-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${server}
}
`);
  const child = spawn(NGINX as string, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  t.teardown(() => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  }));
  const port = /listen 127\.0\.0\.1:(\d+);/.exec(server)?.[1];
  const base = `http://127.0.0.1:${port}`;
  const up = await waitFor(async () => (await send(base, '/public/ready').then((r) => r.status === 200, () => false)), 10_000, 50);
  return up ? base : undefined;
}

t.test('2 through a real nginx: a client cannot re-describe its request to /verify', { skip: NGINX ? false : 'nginx is not installed on this machine' }, async (t) => {
  const { gw, echo } = await startThreatGateway(t, { server: TRUSTED });
  const gwAddr = new URL(gw.url).host;
  const echoAddr = new URL(echo.url).host;
  for (const [recipe, build] of [['X-Original-URL', documentedNginxOriginalUrlConfig], ['X-Forwarded-*', documentedNginxConfig]] as const) {
    const base = await startNginx(t, build(gwAddr, echoAddr, `127.0.0.1:${await freePort()}`));
    if (!base) { t.fail(`${recipe}: nginx did not start`); continue; }
    const before = echo.received.length;
    const nginxHost = new URL(base).host;
    // The reported bypass: the client adds the other set's headers, which nginx passes on.
    const attacks: Record<string, string>[] = [
      { 'x-forwarded-uri': '/public/x', 'x-forwarded-host': nginxHost, 'x-forwarded-method': 'GET' },
      { 'x-original-url': `http://${nginxHost}/public/x`, 'x-original-method': 'GET' },
      { 'x-forwarded-uri': '/public/x' },
      { 'x-original-url': '/public/x' },
    ];
    for (const headers of attacks) {
      const r = await send(base, '/admin/users', { headers });
      t.not(r.status, 200, `${recipe}: ${JSON.stringify(headers)} → ${r.status}`);
      t.ok(r.status >= 400, 'an error, never a pass');
    }
    t.equal(echo.received.length, before, `${recipe}: NF, nginx proxied none of them`);
    const ok = await send(base, '/admin/users', { headers: { 'x-api-key': KEY_ADMIN } });
    t.equal(ok.status, 200, `${recipe}: a real admin passes`);
    t.equal(echo.received.at(-1)?.headers['x-auth-user'], 'root');
    const pub = await send(base, '/public/x?y=1');
    t.equal(pub.status, 200, `${recipe}: the anonymous route passes`);
    t.equal(echo.received.at(-1)?.url, '/public/x?y=1');
  }
});
