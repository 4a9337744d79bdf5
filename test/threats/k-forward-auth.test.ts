// THREATS K (81-84): the forward-auth decision endpoint {prefix}/verify, for nginx
// auth_request / Traefik ForwardAuth. Only a trusted proxy may ask; only an explicit allow is
// 2xx; decisions are never cacheable; identity headers only on allow, one of each.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import t from 'tap';
import { send, sendRaw, type RawResponse } from '../helpers/http.js';
import { countHeader, KEY_ADMIN, KEY_ALICE, startThreatGateway, statusOf } from './_fixtures.js';
import { startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';
import { documentedNginxConfig } from './_nginx.js';

const TRUSTED = { trustedProxies: ['127.0.0.1/32'] };

/** What nginx / Traefik send about the original request. */
function described(host: string, uri: string, method = 'GET', extra: Record<string, string> = {}): Record<string, string> {
  return { 'x-forwarded-method': method, 'x-forwarded-proto': 'https', 'x-forwarded-host': host, 'x-forwarded-uri': uri, ...extra };
}

function rawHeaderCount(res: RawResponse, name: string): number {
  const v = res.headers[name];
  return v === undefined ? 0 : Array.isArray(v) ? v.length : 1;
}

t.test('81 direct calls from an untrusted peer are refused, whatever they describe', async (t) => {
  for (const server of [{}, { trustedProxies: ['10.0.0.0/8'] }]) {
    const { gw, echo, host } = await startThreatGateway(t, { server });
    const probes: Record<string, string>[] = [
      { 'x-original-url': `https://${host}/public/x` },
      described(host, '/public/x'),
      described('public.gw.test', '/public/x', 'GET', { 'x-forwarded-for': '10.0.0.7' }),
      { ...described(host, '/admin/x'), 'x-api-key': KEY_ADMIN },
      {},
    ];
    for (const headers of probes) {
      const r = await send(gw.url, '/.auth/verify', { headers });
      t.equal(r.status, 403, `${JSON.stringify(server)} ${JSON.stringify(headers)}`);
      t.equal(r.headers['cache-control'], 'no-store');
      t.notOk(r.headers['x-auth-user'], 'no identity');
    }
    t.equal(echo.received.length, 0);
  }
});

t.test('81/83 a trusted proxy gets a decision for the described request', async (t) => {
  const { gw, host } = await startThreatGateway(t, {
    server: TRUSTED,
    routes: [{ name: 'browser', match: { path: '/app/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys'], onUnauthenticated: 'login' }],
  });
  const pub = await send(gw.url, '/.auth/verify', { headers: described(host, '/public/x') });
  t.equal(pub.status, 200, 'anonymous route: allow');
  t.equal(rawHeaderCount(pub, 'x-auth-user'), 0, 'no identity for anonymous');

  const anon = await send(gw.url, '/.auth/verify', { headers: described(host, '/admin/x') });
  t.equal(anon.status, 401, 'protected, no credential: 401');
  t.match(anon.headers['content-type'], /problem\+json/);

  const staff = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/admin/x'), 'x-api-key': KEY_ALICE } });
  t.equal(staff.status, 403, 'identity without the group: 403');
  t.equal(staff.json().code, 'forbidden');

  const admin = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/admin/x'), 'x-api-key': KEY_ADMIN } });
  t.equal(admin.status, 200);
  t.equal(admin.headers['x-auth-user'], 'root');

  // The path decides, not the untrusted-looking parts: dot segments resolve before matching.
  const dots = await send(gw.url, '/.auth/verify', { headers: described(host, '/public/../admin/x') });
  t.equal(dots.status, 401);
  const method = await send(gw.url, '/.auth/verify', { headers: described(host, '/ro/x', 'POST') });
  t.equal(method.status, 404, 'the method is part of the match: POST /ro/x has no route');
  const lower = await send(gw.url, '/.auth/verify', { headers: described(host, '/ro/x', 'get') });
  t.equal(lower.status, 200, 'the method is compared upper-cased');

  // nginx style: X-Original-URL carries the whole URL.
  const orig = await send(gw.url, '/.auth/verify', { headers: { 'x-original-url': `https://${host}/admin/x`, 'x-original-method': 'GET', 'x-api-key': KEY_ADMIN } });
  t.equal(orig.status, 200);
  const origAnon = await send(gw.url, '/.auth/verify', { headers: { 'x-original-url': `https://${host}/admin/x`, 'x-original-method': 'GET' } });
  t.equal(origAnon.status, 401);

  const browser = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/app/page?x=1'), accept: 'text/html' } });
  t.equal(browser.status, 302, 'a browser on a login route is sent to the login page');
  t.match(browser.headers.location, /^\/\.auth\/login\?rd=/);
  t.equal(browser.headers['cache-control'], 'no-store');
});

t.test('82 malformed original URIs are 400/401/404, never 200', async (t) => {
  const { gw, host } = await startThreatGateway(t, { server: TRUSTED });
  const bad: Record<string, string>[] = [
    described(host, '/admin/%zz'),
    described(host, '/admin/%00'),
    described(host, '/public/%2e%2e/admin/x'),
    described(host, '/public/..%2fadmin/x'),
    described(host, '/public/..\\admin/x'),
    described(host, 'admin/x'),
    described(host, 'http://evil.test/public/x'),
    described(host, '//evil.test/public/x'),
    described(host, '/public/x#/../../admin'),
    described(host, '/admin/' + 'a'.repeat(8000)),
    described(host, '/public/x', 'TRACE'),
    described(host, '/public/x', 'G ET'),
    described(host, '/public/x', 'GET\u00e9'),
    { 'x-forwarded-method': 'GET', 'x-forwarded-host': host },
    { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x' },
    { 'x-original-url': 'http://[::1', 'x-original-method': 'GET' },
    { 'x-original-url': 'https:///public/x', 'x-original-method': 'GET' },
    { 'x-original-url': 'https://user@public.gw.test/admin/x', 'x-original-method': 'GET' },
    { 'x-original-url': 'https://public.gw.test?@admin/x', 'x-original-method': 'GET' },
    { 'x-original-url': 'https://public.gw.test#@admin/x', 'x-original-method': 'GET' },
    { 'x-original-url': 'https://public.gw.test\\@admin/x', 'x-original-method': 'GET' },
    { 'x-original-url': '' },
  ];
  for (const headers of bad) {
    const r = await send(gw.url, '/.auth/verify', { headers }).catch(() => undefined);
    if (!r) continue; // the client refused to send it
    t.ok([400, 401, 404].includes(r.status), `${JSON.stringify(headers).slice(0, 120)} → ${r.status}`);
    t.equal(r.headers['cache-control'], 'no-store');
  }
  // A DEL byte in the described URI (only a raw client can send it).
  const del = await sendRaw(gw.url, `GET /.auth/verify HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: ${host}\r\nX-Forwarded-Uri: /public/\x7f\r\nConnection: close\r\n\r\n`);
  t.ok([400, 401].includes(statusOf(del)), `DEL → ${statusOf(del)}`);
  const rawPercent = await sendRaw(gw.url, `GET /.auth/verify HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: ${host}\r\nX-Forwarded-Uri: /public/\x80\r\nConnection: close\r\n\r\n`);
  t.ok([400, 401].includes(statusOf(rawPercent)), `raw 0x80 → ${statusOf(rawPercent)}`);
  const dup = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/public/x'), 'x-forwarded-uri': ['/public/x', '/admin/x'] } });
  t.not(dup.status, 200, `two X-Forwarded-Uri headers are not an allow (${dup.status})`);
});

t.test('83 only an explicit allow is 2xx: unknown route 404, store failure 5xx, oversized 431', async (t) => {
  const echo = await startTestEcho(t);
  const hmac = fileURLToPath(new URL('../../plugins/hmac-signature.js', import.meta.url));
  // A Redis store nobody listens on: every store call fails (closed port).
  const port = await new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); }); });
  const gw = await startTestGateway(t, {
    server: TRUSTED,
    store: { driver: 'redis', redis: { url: `redis://127.0.0.1:${port}`, keyPrefix: 'unused:' } },
    authenticators: { hook: { type: 'plugin', module: hmac, options: { secret: 'verify-test-secret-0123' } }, tok: { type: 'token' } },
    routes: [
      { name: 'hooks', match: { path: '/hooks/**' }, upstream: echo.url, auth: ['hook'] },
      { name: 'tok', match: { path: '/tok/**' }, upstream: echo.url, auth: ['tok'] },
    ],
  });
  const host = new URL(gw.url).host;
  const unknown = await send(gw.url, '/.auth/verify', { headers: described(host, '/nowhere') });
  t.equal(unknown.status, 404);
  t.equal(unknown.json().code, 'no_route');

  const ts = Math.floor(Date.now() / 1000);
  const sig = 'sha256=' + createHmac('sha256', 'verify-test-secret-0123').update(`${ts}.`).digest('hex');
  const down = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/hooks/x'), 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sig } });
  t.equal(down.status, 503, 'the replay check cannot reach the store: 503, not 200');
  t.equal(down.json().code, 'store_unavailable');
  const tok = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/tok/x'), authorization: 'Token agt_' + 'A'.repeat(43) } });
  t.ok(tok.status >= 500 || tok.status === 401, `opaque token with the store down → ${tok.status}`);
  t.not(tok.status, 200);

  const huge = await sendRaw(gw.url, `GET /.auth/verify HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Uri: /hooks/x\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`);
  t.equal(statusOf(huge), 431, 'a 1 MB header is 431');
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const r = await send(gw.url, '/.auth/verify', { method, headers: described(host, '/hooks/x') });
    t.ok(r.status >= 400, `${method} /verify → ${r.status}, never 2xx`);
  }
  const head = await send(gw.url, '/.auth/verify', { method: 'HEAD', headers: described(host, '/nowhere') });
  t.equal(head.status, 404, 'HEAD is answered like GET');
  t.equal(echo.received.length, 0, 'verify never proxies');
});

t.test('84 decisions are not cacheable; identity headers only on allow, exactly one of each', async (t) => {
  const { gw, host } = await startThreatGateway(t, { server: TRUSTED });
  const spoof = { 'x-auth-user': 'mallory', 'x-auth-groups': 'admin', 'x-auth-mfa': 'true' };
  const allow = await send(gw.url, '/.auth/verify', { headers: { ...described(host, '/api/x'), ...spoof, 'x-api-key': KEY_ALICE } });
  t.equal(allow.status, 200);
  t.equal(allow.headers['cache-control'], 'no-store');
  const raw = await sendRaw(gw.url, `GET /.auth/verify HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: ${host}\r\nX-Forwarded-Uri: /api/x\r\nX-API-Key: ${KEY_ALICE}\r\nX-Auth-User: mallory\r\nX-Auth-Groups: admin\r\nConnection: close\r\n\r\n`);
  const lines = raw.split('\r\n\r\n')[0]?.split('\r\n').slice(1) ?? [];
  const names = lines.flatMap((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
  for (const h of ['x-auth-user', 'x-auth-email', 'x-auth-groups', 'x-auth-scopes', 'x-auth-method', 'x-auth-mfa']) t.equal(countHeader(names, h), 1, `exactly one ${h}`);
  t.equal(allow.headers['x-auth-user'], 'alice', 'the gateway value, not the spoofed one');
  t.equal(allow.headers['x-auth-groups'], 'staff');
  t.equal(allow.headers['x-auth-scopes'], 'orders:read');
  t.equal(allow.headers['x-auth-method'], 'apikey');
  t.equal(allow.headers['x-auth-mfa'], 'false');
  t.equal(allow.body, '', 'an empty body');

  for (const [what, headers] of [
    ['unauthenticated', { ...described(host, '/api/x'), ...spoof }],
    ['bad key', { ...described(host, '/api/x'), ...spoof, 'x-api-key': 'nope' }],
    ['forbidden', { ...described(host, '/admin/x'), ...spoof, 'x-api-key': KEY_ALICE }],
    ['bad path', { ...described(host, '/a/%2e%2e/x'), ...spoof }],
    ['no route', { ...described(host, '/zzz'), ...spoof }],
  ] as const) {
    const r = await send(gw.url, '/.auth/verify', { headers });
    t.not(r.status, 200, what);
    t.equal(r.headers['cache-control'], 'no-store', `${what}: no-store`);
    t.same(Object.keys(r.headers).filter((h) => h.startsWith('x-auth-')), [], `${what}: no X-Auth-* header`);
  }
});

/** A free TCP port on 127.0.0.1 (nginx needs a number in its config). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

function findNginx(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) if (existsSync(candidate)) return candidate;
  try { return execFileSync('which', ['nginx'], { encoding: 'utf8' }).trim() || undefined; } catch { return undefined; }
}

const NGINX = findNginx();

t.test('82 nginx auth_request end to end (the configuration from docs/forward-auth.md)', { skip: NGINX ? false : 'nginx is not installed on this machine' }, async (t) => {
  const nginx = NGINX as string;
  const { gw, echo } = await startThreatGateway(t, { server: TRUSTED });
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'authgate-nginx-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gwAddr = new URL(gw.url).host;
  const echoAddr = new URL(echo.url).host;
  const conf = `
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
${documentedNginxConfig(gwAddr, echoAddr, `127.0.0.1:${port}`)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(nginx, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  t.teardown(() => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  }));
  const base = `http://127.0.0.1:${port}`;
  const up = await waitFor(async () => (await send(base, '/public/ready').then((r) => r.status === 200, () => false)), 10_000, 50);
  if (!up) {
    t.fail(`nginx did not start: ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-800) : 'no log'}`);
    return;
  }
  const pub = await send(base, '/public/x?y=1', { headers: { 'x-auth-user': 'mallory' } });
  t.equal(pub.status, 200);
  t.equal(echo.received.at(-1)?.url, '/public/x?y=1');
  t.notOk(echo.received.at(-1)?.headers['x-auth-user'], 'a client X-Auth-User is replaced by the (empty, so absent) decision value');
  const forwardedBefore = echo.received.length;

  const anon = await send(base, '/admin/x');
  t.equal(anon.status, 401, 'no key: 401 from nginx');
  const staff = await send(base, '/admin/x', { headers: { 'x-api-key': KEY_ALICE } });
  t.equal(staff.status, 403, 'wrong group: 403 from nginx');
  for (const p of ['/admin/%zz', '/admin/%00', '/public/%2e%2e/admin/x', '/public/..%2fadmin/x', '/public/../admin/x', '/admin/' + 'a'.repeat(6000)]) {
    const r = await send(base, p);
    t.not(r.status, 200, `${p.slice(0, 40)} → ${r.status}`);
    t.ok(r.status >= 400, 'an error, never a pass');
  }
  const del = await sendRaw(base, `GET /admin/\x7f HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`);
  t.not(statusOf(del), 200, `DEL → ${statusOf(del)}`);
  t.equal(echo.received.length, forwardedBefore, 'NF: nginx proxied none of the refused requests');

  const admin = await send(base, '/admin/users', { headers: { 'x-api-key': KEY_ADMIN, 'x-auth-user': 'mallory', 'X_Auth_User': 'mallory2' } });
  t.equal(admin.status, 200);
  const h = echo.received.at(-1)?.headers ?? {};
  t.equal(h['x-auth-user'], 'root', 'the upstream gets the gateway decision through auth_request_set');
  t.equal(h['x-auth-groups'], 'admin');
  t.equal(h['x-auth-method'], 'apikey');
  t.notOk(h['x_auth_user'], 'nginx drops underscore headers');
  t.notOk(h['x-api-key'], 'the consumed API key is not forwarded');
});
