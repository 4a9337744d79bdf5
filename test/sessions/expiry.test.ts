// Server-side idle and absolute timeouts, and the live user record (THREATS 33, 34).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';
import { call, me, signIn, usersFile } from './_browser.js';

const until = (ms: number) => waitFor(() => Date.now() >= ms, ms - Date.now() + 1000, 10);

async function gateway(t: Parameters<typeof startTestGateway>[0], session: Record<string, string>) {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    secrets: { session: randomBytes(32).toString('base64url') },
    login: { session, lockout: { maxFailures: 1000, maxFailuresPerAddress: 1000 } },
    authenticators: { web: { type: 'session' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'], require: { groups: ['admin'] } }],
  }, { files: { 'users.yaml': await usersFile() } });
  return { gw, echo };
}

t.test('THREATS 33: idle timeout, enforced by the server', async (t) => {
  const { gw } = await gateway(t, { idleTimeout: '2s', absoluteTimeout: '1h' });
  const cookie = await signIn(gw.url);
  // Activity keeps it alive well past the idle timeout…
  const start = Date.now();
  while (Date.now() - start < 4500) {
    t.equal((await me(gw.url, cookie)).status, 200);
    await until(Date.now() + 250);
  }
  // …and 2 s of silence (plus margin) end it, whatever the client thinks of the cookie.
  await until(Date.now() + 2300);
  const idle = await call(`${gw.url}/.auth/me`, { headers: { cookie: `authgate_session=${cookie}; Expires=Fri, 31 Dec 9999 23:59:59 GMT` } });
  t.equal(idle.status, 401);
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status, 401);
});

t.test('THREATS 33: absolute timeout despite activity', async (t) => {
  const { gw } = await gateway(t, { idleTimeout: '30m', absoluteTimeout: '2s' });
  const a = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-correct-horse' }) });
  t.match(a.setCookies.join(), /Max-Age=2;/, 'the cookie says so too');
  const cookie = await signIn(gw.url);
  const start = Date.now();
  let lastOk = 0;
  let firstFail = 0;
  while (Date.now() - start < 4000) {
    const r = await me(gw.url, cookie);
    if (r.status === 200) lastOk = Date.now() - start;
    else if (firstFail === 0) firstFail = Date.now() - start;
    await until(Date.now() + 100);
  }
  t.ok(lastOk >= 1000, `worked while young (${lastOk} ms)`);
  t.ok(firstFail >= 1500 && firstFail <= 3500, `ended at the absolute timeout (${firstFail} ms)`);
  t.ok(lastOk < firstFail, 'and never again after');
});

t.test('THREATS 34: identity follows the users file; a disabled user is signed out', async (t) => {
  const { gw, echo } = await gateway(t, { idleTimeout: '30m', absoluteTimeout: '12h' });
  const cookie = await signIn(gw.url);
  const first = await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(first.json<{ headers: Record<string, string> }>().headers['x-auth-groups'], 'admin,staff');

  const hashes = (await import('./_browser.js')).passwordHashes;
  const h = await hashes();
  writeFileSync(join(gw.dir, 'users.yaml'), await usersFile({ alice: { email: 'alice@new.test', password: h.alice, groups: ['staff'] } }));
  t.ok(await waitFor(async () => (await me(gw.url, cookie)).json<{ groups?: string[] }>().groups?.join() === 'staff', 5000), 'groups refreshed');
  t.equal((await me(gw.url, cookie)).json().email, 'alice@new.test');
  const before = echo.received.length;
  const demoted = await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(demoted.status, 403, 'lost admin → forbidden at once');
  t.equal(echo.received.length, before);

  writeFileSync(join(gw.dir, 'users.yaml'), await usersFile({ alice: { email: 'alice@new.test', password: h.alice, groups: ['admin'], disabled: true } }));
  t.ok(await waitFor(async () => (await me(gw.url, cookie)).status === 401, 5000), 'disabled user signed out');
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status, 401);

  writeFileSync(join(gw.dir, 'users.yaml'), await usersFile());
  let again = '';
  t.ok(await waitFor(async () => {
    again = await signIn(gw.url).catch(() => '');
    return again !== '';
  }, 5000), 're-enabled');
  writeFileSync(join(gw.dir, 'users.yaml'), await usersFile({ alice: { email: 'alice@example.test', password: h.mallory, groups: ['admin', 'staff'] } }));
  t.ok(await waitFor(async () => (await me(gw.url, again)).status === 401, 5000), 'a changed password ends the session');
});
