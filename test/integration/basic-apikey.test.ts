// Basic and API-key authentication through a real gateway (THREATS 16, 23-26, 78, 91, 97).
import t from 'tap';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { request } from 'undici';
import { Redis } from 'ioredis';
import { hashPassword } from '../../src/credentials/passwords.js';
import { startTestEcho, startTestGateway, makeTempDir, waitFor } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

const sha = (k: string): string => 'sha256:' + createHash('sha256').update(k).digest('hex');
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
const fixture = JSON.parse(readFileSync(new URL('../fixtures/django-hashes.json', import.meta.url), 'utf8')) as { vectors: { password: string; hash: string }[] };
const KEY = 'ak_' + randomBytes(24).toString('base64url');
const EIGHTY = 'b'.repeat(50) + 'é'.repeat(15); // 80 UTF-8 bytes

let ALICE = '';
let COLON = '';
let BEA = '';
t.before(async () => {
  ALICE = await hashPassword('wonderland');
  COLON = await hashPassword('pa:ss');
  // What a truncating bcrypt system would have stored for the 80-byte password.
  BEA = await bcrypt.hash(Buffer.from(EIGHTY).subarray(0, 72).toString('utf8'), 4);
});

const usersFile = (aliceDisabled = false): string => `users:
  alice: { email: alice@example.com, password: "${ALICE}", groups: [staff], disabled: ${aliceDisabled} }
  colon: { password: "${COLON}" }
  bea: { password: "${BEA}" }
  django: { password: "${fixture.vectors[2]!.hash}" }
`;

function config(echoUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    users: { file: 'users.yaml' },
    login: { lockout: { maxFailures: 5 } },
    authenticators: {
      staff: { type: 'basic', realm: 'staff' },
      keys: { type: 'apikey', keys: [{ id: 'acme', hash: sha(KEY), user: 'svc-acme', scopes: ['orders:read'] }] },
    },
    routes: [
      { name: 'basic', match: { path: '/basic/**' }, upstream: echoUrl, auth: ['staff'] },
      { name: 'api', match: { path: '/api/**' }, upstream: echoUrl, auth: ['keys'] },
    ],
    ...extra,
  };
}

interface Echoed {
  headers: Record<string, string>;
}

t.test('Basic: parsing, identity headers, credentials not forwarded (THREATS 23, 78, 91)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url), { files: { 'users.yaml': usersFile() } });

  const ok = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland'), 'x-auth-user': 'admin' } });
  t.equal(ok.statusCode, 200);
  const seen = (await ok.body.json()) as Echoed;
  t.equal(seen.headers['x-auth-user'], 'alice');
  t.equal(seen.headers['x-auth-method'], 'basic');
  t.equal(seen.headers['x-auth-groups'], 'staff');
  t.notOk(seen.headers.authorization, 'the Authorization header is not forwarded');

  const colon = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('colon', 'pa:ss') } });
  t.equal(colon.statusCode, 200, 'split at the first colon');
  await colon.body.dump();
  const django = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('django', fixture.vectors[2]!.password) } });
  t.equal(django.statusCode, 200, 'a Django hash verifies as-is');
  await django.body.dump();

  const before = echo.received.length;
  const refused = [
    basic('alice', ''),
    `Basic ${Buffer.from('alice').toString('base64')}`,
    'Basic !!!',
    `Basic  ${Buffer.from('alice:wonderland').toString('base64')}`,
    `Basic ${Buffer.from('alice:wonderland').toString('base64')}, Bearer y`,
    'Basic x, Bearer y',
    basic('alice\r\nX-Auth-User: admin', 'wonderland'),
    basic('alice%0d%0a', 'wonderland'),
  ];
  for (const authorization of refused) {
    const res = await request(`${gw.url}/basic/x`, { headers: { authorization } });
    t.equal(res.statusCode, 401, JSON.stringify(authorization));
    t.equal(res.headers['www-authenticate'], 'Basic realm="staff", charset="UTF-8"');
    t.match(await res.body.json(), { code: 'invalid_credentials', status: 401 });
  }
  t.equal(echo.received.length, before, 'nothing refused reached the upstream');
});

t.test('Basic: 72-byte bcrypt truncation and huge passwords (THREATS 24)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url, { login: { lockout: { maxFailures: 50, maxFailuresPerAddress: 50 } } }), { files: { 'users.yaml': usersFile() } });
  const prefix = Buffer.from(EIGHTY).subarray(0, 72).toString('utf8');
  const res72 = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('bea', prefix) } });
  t.equal(res72.statusCode, 200, 'the stored 72-byte password');
  await res72.body.dump();
  for (const pw of [EIGHTY, EIGHTY + 'x'.repeat(100)]) {
    const res = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('bea', pw) } });
    t.equal(res.statusCode, 401, `${Buffer.byteLength(pw)} bytes: no truncation equivalence`);
    await res.body.dump();
  }
  const started = Date.now();
  const huge = await send(gw.url, '/basic/x', { headers: { authorization: basic('bea', 'z'.repeat(1024 * 1024)) } }).catch(() => ({ status: 431 }));
  t.ok([401, 413, 431].includes(huge.status), `1 MB password: ${huge.status}`);
  t.ok(Date.now() - started < 2000, 'answered quickly');
});

t.test('Basic: lockout, enumeration and the right password while locked (THREATS 25, 26)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url), { files: { 'users.yaml': usersFile() } });
  const wrong = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', 'nope') } });
  const unknown = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('mallory', 'nope') } });
  t.equal(wrong.statusCode, unknown.statusCode);
  t.same(await wrong.body.json(), await unknown.body.json(), 'identical bodies for unknown user and wrong password');

  for (let i = 0; i < 4; i++) {
    // Rotating X-Forwarded-For from an untrusted peer changes nothing.
    const r = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', `nope${i}`), 'x-forwarded-for': `203.0.113.${i}` } });
    t.equal(r.statusCode, 401);
    await r.body.dump();
  }
  const locked = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland') } });
  t.equal(locked.statusCode, 429, 'the right password is refused while locked');
  t.ok(Number(locked.headers['retry-after']) > 0, `Retry-After: ${String(locked.headers['retry-after'])}`);
  t.match(await locked.body.json(), { code: 'locked', status: 429 });

  // Unknown names lock the same way: lockout does not reveal which accounts exist.
  for (let i = 0; i < 5; i++) await (await request(`${gw.url}/basic/x`, { headers: { authorization: basic('mallory', `x${i}`) } })).body.dump();
  const ghost = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('mallory', 'x') } });
  t.equal(ghost.statusCode, 429);
  await ghost.body.dump();
});

t.test('Basic: one password × many usernames locks the client address (THREATS 25)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url), { files: { 'users.yaml': usersFile() } });
  const statuses: number[] = [];
  for (let i = 0; i < 25; i++) {
    const r = await request(`${gw.url}/basic/x`, { headers: { authorization: basic(`user${i}`, 'Summer2024!') } });
    statuses.push(r.statusCode);
    await r.body.dump();
  }
  t.same(statuses.slice(0, 20), Array<number>(20).fill(401));
  t.same(statuses.slice(20), Array<number>(5).fill(429), 'after 4 × maxFailures failures from one address');
  const alice = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland') } });
  t.equal(alice.statusCode, 429, 'the address is locked for every account');
  await alice.body.dump();
});

t.test('Basic: disabling a user in the users file stops cached credentials within 1 s', async (t) => {
  const echo = await startTestEcho(t);
  const dir = makeTempDir(t);
  const gw = await startTestGateway(t, config(echo.url), { dir, files: { 'users.yaml': usersFile() } });
  const get = async (): Promise<number> => {
    const r = await request(`${gw.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland') } });
    await r.body.dump();
    return r.statusCode;
  };
  t.equal(await get(), 200);
  t.equal(await get(), 200, 'served from the verification cache');
  const started = Date.now();
  writeFileSync(join(dir, 'users.yaml'), usersFile(true));
  t.ok(await waitFor(async () => (await get()) === 401, 3000), 'refused after the edit');
  t.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
});

t.test('API keys: exact match from the configured header only (THREATS 16, 78)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url), { files: { 'users.yaml': usersFile() } });
  const ok = await request(`${gw.url}/api/x`, { headers: { 'x-api-key': KEY } });
  t.equal(ok.statusCode, 200);
  const seen = (await ok.body.json()) as Echoed;
  t.equal(seen.headers['x-auth-user'], 'svc-acme');
  t.equal(seen.headers['x-auth-method'], 'apikey');
  t.equal(seen.headers['x-auth-scopes'], 'orders:read');
  t.notOk(seen.headers['x-api-key'], 'the key is not forwarded');

  const before = echo.received.length;
  const q = await request(`${gw.url}/api/x?api_key=${KEY}`);
  t.equal(q.statusCode, 401, '?api_key= on a header-only config');
  await q.body.dump();
  // A trailing space on the wire is optional whitespace that Node's HTTP parser removes before
  // anyone sees the value (RFC 9110 5.5), so `X-API-Key: KEY ` is the exact key; a space that
  // is part of the value (%20, no-break space) is not.
  for (const bad of [`${KEY}%20`, `${KEY}\u00a0`, `${KEY}%00`, KEY.toUpperCase(), ` x${KEY}`]) {
    const r = await send(gw.url, '/api/x', { headers: { 'x-api-key': bad } });
    t.equal(r.status, 401, JSON.stringify(bad.slice(-6)));
  }
  const two = await send(gw.url, '/api/x', { headers: { 'x-api-key': [KEY, KEY] } });
  t.equal(two.status, 400, 'two X-API-Key headers');
  t.equal(echo.received.length, before, 'none of them reached the upstream');
});

t.test('no password, base64 credentials or key in any log line (THREATS 97)', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url), { files: { 'users.yaml': usersFile() }, logLevel: 'debug' });
  for (const [pw, user] of [['wonderland', 'alice'], ['WRONG-pw-123', 'alice'], ['WRONG-pw-456', 'nobody']] as const) {
    await (await request(`${gw.url}/basic/x?x=1`, { headers: { authorization: basic(user, pw) } })).body.dump();
  }
  await (await request(`${gw.url}/api/x`, { headers: { 'x-api-key': KEY } })).body.dump();
  await (await request(`${gw.url}/api/x`, { headers: { 'x-api-key': KEY + 'zz' } })).body.dump();
  const logs = gw.rawLogs.join('\n');
  t.ok(gw.rawLogs.length > 0, 'there are logs to check');
  for (const secret of ['wonderland', 'WRONG-pw-123', 'WRONG-pw-456', KEY, KEY.slice(0, 12), Buffer.from('alice:wonderland').toString('base64'), ALICE.slice(30)]) {
    t.notOk(logs.includes(secret), `no ${secret.slice(0, 6)}… in logs`);
  }
});

t.test('redis: a lockout on one instance holds on another', async (t) => {
  const prefix = `test:${randomUUID()}:`;
  const redis = new Redis('redis://127.0.0.1:6379/0', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  const echo = await startTestEcho(t);
  const store = { driver: 'redis', redis: { url: 'redis://127.0.0.1:6379/0', keyPrefix: prefix } };
  const a = await startTestGateway(t, config(echo.url, { store }), { files: { 'users.yaml': usersFile() } });
  const b = await startTestGateway(t, config(echo.url, { store }), { files: { 'users.yaml': usersFile() } });
  const okB = await request(`${b.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland') } });
  t.equal(okB.statusCode, 200, 'B has the credentials cached');
  await okB.body.dump();
  for (let i = 0; i < 5; i++) await (await request(`${a.url}/basic/x`, { headers: { authorization: basic('alice', `bad${i}`) } })).body.dump();
  const started = Date.now();
  const lockedOnB = await waitFor(async () => {
    const r = await request(`${b.url}/basic/x`, { headers: { authorization: basic('alice', 'wonderland') } });
    await r.body.dump();
    return r.statusCode === 429;
  }, 3000);
  t.ok(lockedOnB, 'B refuses alice');
  t.ok(Date.now() - started <= 1500, `within ${Date.now() - started} ms`);
});
