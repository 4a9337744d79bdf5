// THREATS K (81-84) through a real Caddy: the `forward_auth` configuration documented in
// docs/forward-auth.md, run by `caddy` on free ports in front of a test gateway and upstream.
// Allow and deny as the gateway decides, and a client cannot put identity headers of its own
// through Caddy (the upstream is checked, not just the status).
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { send, sendRaw } from '../helpers/http.js';
import { makeTempDir, waitFor } from '../helpers/gateway.js';
import { freePort } from '../helpers/redis.js';
import { documentedCaddyfile } from './_caddy.js';
import { KEY_ADMIN, KEY_ALICE, startThreatGateway, statusOf } from './_fixtures.js';

function findCaddy(): string | undefined {
  try {
    return execFileSync('which', ['caddy'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const CADDY = findCaddy();
const IDENTITY = ['x-auth-user', 'x-auth-email', 'x-auth-groups', 'x-auth-scopes', 'x-auth-method', 'x-auth-mfa'];

t.test('Caddy forward_auth end to end (the configuration from docs/forward-auth.md)', { skip: CADDY ? false : 'caddy is not installed on this machine' }, async (t) => {
  const { gw, echo } = await startThreatGateway(t, { server: { trustedProxies: ['127.0.0.1/32'] } });
  const port = await freePort();
  const dir = makeTempDir(t, 'authgate-caddy-');
  // No admin endpoint; Caddy's data and autosave stay in the temp dir.
  const caddyfile = `{\n\tadmin off\n}\n${documentedCaddyfile(new URL(gw.url).host, new URL(echo.url).host, `127.0.0.1:${port}`)}`;
  writeFileSync(join(dir, 'Caddyfile'), caddyfile);
  let log = '';
  const child = spawn(CADDY as string, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
    env: { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-4000)));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  const base = `http://127.0.0.1:${port}`;
  const up = await waitFor(async () => send(base, '/public/ready').then((r) => r.status === 200, () => false), 15_000, 50);
  if (!up) {
    t.fail(`caddy did not start: ${log}`);
    return;
  }

  // Anonymous route: allowed, and the client's own identity headers do not reach the upstream.
  const spoof = { 'x-auth-role': 'admin', 'X_Auth_User': 'mallory2', 'x-auth-user': 'mallory', 'x-auth-groups': 'admin', 'x-auth-method': 'basic', 'x-auth-mfa': 'true', 'x-auth-email': 'm@evil.test', 'x-auth-scopes': 'all' };
  const pub = await send(base, '/public/x?y=1', { headers: spoof });
  t.equal(pub.status, 200);
  let got = echo.received.at(-1);
  t.equal(got?.url, '/public/x?y=1');
  for (const h of IDENTITY) t.notOk(got?.headers[h], `anonymous route: a client ${h} does not reach the upstream`);
  t.notOk(got?.headers['x-auth-role'], 'nor any other X-Auth-* name (authgate strips the prefix when it proxies itself)');
  t.notOk(got?.headers['x_auth_user'], 'nor the alias spelling X_Auth_User (read as X-Auth-User by WSGI and PHP)');
  const forwardedBefore = echo.received.length;

  // Deny: Caddy relays the gateway's answer and proxies nothing.
  t.equal((await send(base, '/admin/x', { headers: spoof })).status, 401, 'no key (only spoofed headers): 401 from Caddy');
  t.equal((await send(base, '/admin/x', { headers: { 'x-api-key': KEY_ALICE } })).status, 403, 'wrong group: 403 from Caddy');
  t.equal((await send(base, '/admin/x', { headers: { 'x-api-key': 'ak_nope' } })).status, 401, 'bad key: 401');
  for (const p of ['/admin/%zz', '/admin/%00', '/public/%2e%2e/admin/x', '/public/..%2fadmin/x', '/public/../admin/x', '/zzz']) {
    const r = await send(base, p);
    t.ok(r.status >= 400, `${p} → ${r.status}, never a pass`);
  }
  const del = await sendRaw(base, 'GET /admin/\x7f HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
  t.not(statusOf(del), 200, `DEL → ${statusOf(del)}`);
  t.equal(echo.received.length, forwardedBefore, 'Caddy proxied none of the refused requests');

  // Allow: the gateway's identity replaces the client's; the consumed credential is dropped.
  const admin = await send(base, '/admin/users', { headers: { ...spoof, 'x-api-key': KEY_ADMIN } });
  t.equal(admin.status, 200);
  got = echo.received.at(-1);
  const h = got?.headers ?? {};
  t.equal(h['x-auth-user'], 'root', 'the upstream gets the gateway decision (copy_headers)');
  t.equal(h['x-auth-groups'], 'admin');
  t.equal(h['x-auth-method'], 'apikey');
  t.equal(h['x-auth-mfa'], 'false');
  t.notOk(h['x-api-key'], 'the consumed API key is not forwarded');
  t.notOk(h.authorization, 'nor an Authorization header');
  // Exactly one value each: the client's value is not appended.
  for (const name of IDENTITY) {
    const v = h[name];
    t.notOk(Array.isArray(v) || String(v ?? '').includes('mallory') || String(v ?? '').includes('evil'), `${name}: the gateway's value only (${String(v)})`);
  }

  // A decision header the gateway does not send (no email for root) is not left to the client.
  const partial = await send(base, '/admin/users', { headers: { 'x-api-key': KEY_ADMIN, 'x-auth-email': 'mallory@evil.test' } });
  t.equal(partial.status, 200);
  t.not(echo.received.at(-1)?.headers['x-auth-email'], 'mallory@evil.test', 'a client X-Auth-Email never reaches the upstream');
});
