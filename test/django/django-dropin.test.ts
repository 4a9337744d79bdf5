// The Django drop-in (SPEC 3.2) against REAL Django 3.2 + DRF + simplejwt (Debian packages, run
// with /usr/bin/python3): the fixture site in test/fixtures/django migrates its own database,
// signs users in with Django's test Client, and issues DRF tokens and simplejwt pairs. authgate
// runs on that database and must accept each credential as the right user, refuse each forgery,
// and stop accepting after Django changes a password, deactivates a user or logs a session out.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createSigner } from 'fast-jwt';
import pg from 'pg';
import { startTestEcho, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { callGateway } from '../helpers/http.js';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';
import { publishUsersChanged } from '../../src/credentials/users.js';
import { RedisStore } from '../../src/store/redis.js';

const PYTHON = '/usr/bin/python3';
const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/django/', import.meta.url));
const PG = 'postgres://postgres@127.0.0.1:5432';
const DB = `authgate_dj_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
const DB_URL = `${PG}/${DB}`;
// The site's SECRET_KEY, and a newer one for the rotation tests.
const SITE_KEY = `django-insecure-${randomBytes(24).toString('hex')}`;
const NEW_KEY = `django-rotated-${randomBytes(24).toString('hex')}`;
const CACHE_TTL_MS = 1000;
const env = { ...process.env, DJANGO_DB_NAME: DB, DJANGO_SECRET_KEY: SITE_KEY, PYTHONDONTWRITEBYTECODE: '1' };

interface UserCreds { id: number; session: string; token: string; access: string; refresh: string; compressedSession?: string; legacySession?: string }
interface Fixture { users: Record<'alice' | 'bob' | 'carol' | 'dave', UserCreds>; anonymousSession: string; compressedData: boolean; legacyData: boolean }

function fixture(...args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [`${FIXTURE_DIR}fixture.py`, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`fixture ${args[0]} failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}'));
    });
  });
}

const admin = new pg.Client({ connectionString: `${PG}/test` });
await admin.connect();
await admin.query(`CREATE DATABASE ${DB}`);
t.teardown(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
});
const site = (await fixture('setup')) as Fixture;
const { alice, bob, carol, dave } = site.users;
const db = new pg.Client({ connectionString: DB_URL });
await db.connect();
t.teardown(() => db.end());

/** Django's own site, served by wsgiref on port 0, behind the gateway on /dj/**. */
async function startDjango(): Promise<string> {
  const child = spawn(PYTHON, [`${FIXTURE_DIR}serve.py`], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.stdin.end();
    child.kill('SIGTERM');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('django did not start')), 30_000);
    child.stdout.once('data', (b: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(b.toString('utf8')) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`django exited ${code}`)));
  });
  return `http://127.0.0.1:${port}`;
}

/** A TCP relay to PostgreSQL that counts bytes and can be cut: proves "no database round trip". */
async function startDbRelay(): Promise<{ url: string; bytes: () => number; cut: () => void }> {
  let bytes = 0;
  let open = true;
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    if (!open) return client.destroy();
    const server = connect(5432, '127.0.0.1');
    sockets.add(client).add(server);
    client.on('data', (b: Buffer) => { bytes += b.length; });
    client.pipe(server).pipe(client);
    const end = () => { client.destroy(); server.destroy(); };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); relay.close(() => resolve()); }));
  const port = (relay.address() as { port: number }).port;
  return { url: `postgres://postgres@127.0.0.1:${port}/${DB}`, bytes: () => bytes, cut: () => { open = false; for (const s of sockets) s.destroy(); } };
}

const echo = await startTestEcho(t);
const djangoUrl = await startDjango();

function gatewayConfig(opts: { secretKey?: unknown; jwt?: Record<string, unknown>; dbUrl?: string; cacheTtl?: string; store?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    ...(opts.store ? { store: opts.store } : {}),
    django: { secretKey: opts.secretKey ?? SITE_KEY },
    users: { postgres: { url: opts.dbUrl ?? DB_URL, preset: 'django', cacheTtl: opts.cacheTtl ?? `${CACHE_TTL_MS}ms` } },
    authenticators: {
      'django-web': { type: 'django-session' },
      'django-token': { type: 'token', source: 'django' },
      'django-jwt': { type: 'jwt', preset: 'simplejwt', ...(opts.jwt ?? {}) },
    },
    routes: [
      { name: 'site', match: { path: '/dj/**' }, upstream: djangoUrl, stripPath: '/dj', passCredentials: true, auth: ['django-web', 'django-token', 'django-jwt'] },
      { name: 'api', match: { path: '/**' }, upstream: echo.url, auth: ['django-web', 'django-token', 'django-jwt'] },
    ],
  };
}

const gw = await startTestGateway(t, gatewayConfig(), { logLevel: 'info' });

const withSession = (key: string, extra = ''): Record<string, string> => ({ cookie: `sessionid=${key}${extra}` });
const withToken = (key: string): Record<string, string> => ({ authorization: `Token ${key}` });
const withBearer = (jwt: string): Record<string, string> => ({ authorization: `Bearer ${jwt}` });

/** A request to the echo upstream: the status, the problem code, and what the upstream received (if it was reached). */
async function viaEcho(g: TestGateway, headers: Record<string, string>, method = 'GET') {
  const before = echo.received.length;
  const res = await callGateway(g, '/api/x', { method, headers });
  const reached = echo.received.slice(before);
  return { status: res.status, code: res.body.code as string | undefined, res, upstream: reached[0]?.headers, reached: reached.length };
}

t.test('the fixture produced what the tests rely on', async (t) => {
  t.ok(site.compressedData, 'a zlib-compressed session (".eJ…")');
  t.ok(site.legacyData, 'a pre-3.1 base64(hash:json) session');
  t.match(alice.token, /^[0-9a-f]{40}$/);
});

t.test('each Django credential reaches the upstream as its Django user', async (t) => {
  const s = await viaEcho(gw, withSession(alice.session, '; theme=dark'));
  t.equal(s.status, 200);
  t.equal(s.upstream?.['x-auth-user'], 'alice');
  t.equal(s.upstream?.['x-auth-email'], 'alice@example.com');
  t.equal(s.upstream?.['x-auth-method'], 'django-session');
  t.same(String(s.upstream?.['x-auth-groups']).split(',').sort(), ['editors', 'staff'], 'auth_user_groups plus is_staff');
  t.equal(s.upstream?.cookie, 'theme=dark', 'the consumed sessionid is removed, other cookies kept');

  for (const [what, key, user] of [['compressed', alice.compressedSession!, 'alice'], ['pre-3.1 format, sha1 user hash', carol.legacySession!, 'carol']] as const) {
    const r = await viaEcho(gw, withSession(key));
    t.equal(r.status, 200, what);
    t.equal(r.upstream?.['x-auth-user'], user, what);
  }

  const tok = await viaEcho(gw, { ...withToken(alice.token), 'x-auth-user': 'bob', 'x-auth-groups': 'superuser' });
  t.equal(tok.status, 200);
  t.equal(tok.upstream?.['x-auth-user'], 'alice', 'a client-sent X-Auth-User never reaches the upstream');
  t.equal(tok.upstream?.['x-auth-method'], 'token');
  t.equal(tok.upstream?.authorization, undefined, 'the DRF key is not forwarded by default');

  const jwt = await viaEcho(gw, withBearer(alice.access));
  t.equal(jwt.status, 200);
  t.equal(jwt.upstream?.['x-auth-user'], 'alice');
  t.equal(jwt.upstream?.['x-auth-method'], 'jwt');
  const bobJwt = await viaEcho(gw, withBearer(bob.access));
  t.equal(bobJwt.upstream?.['x-auth-user'], 'bob');
  t.equal(bobJwt.upstream?.['x-auth-groups'], undefined, 'bob has no groups');

  const logged = gw.rawLogs.join('\n');
  for (const secret of [alice.session, alice.token, alice.access.split('.')[2]!, SITE_KEY]) t.notOk(logged.includes(secret), 'no credential or key in the logs');
});

t.test('gateway tokens keep working in the same token authenticator (source: django)', async (t) => {
  // POST {prefix}/token: the gateway's DRF-compatible endpoint, checking the Django password hash.
  const issued = await callGateway(gw, '/.auth/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse battery staple' }) });
  t.equal(issued.status, 200);
  const key = issued.body.token as string;
  t.notMatch(key, /^[0-9a-f]{40}$/, 'a gateway token, not a DRF key');
  const r = await viaEcho(gw, withToken(key));
  t.equal(r.upstream?.['x-auth-user'], 'alice');
  t.equal(r.upstream?.['x-auth-method'], 'token');

  // The gateway's own endpoints take only its own credentials: a DRF key cannot mint a gateway token that would outlive it.
  t.equal((await callGateway(gw, '/.auth/me', { headers: withToken(key) })).status, 200, 'a gateway token calls /me');
  for (const headers of [withToken(alice.token), withBearer(alice.access), withSession(alice.session)]) {
    t.equal((await callGateway(gw, '/.auth/me', { headers })).status, 401, `a Django credential does not (${Object.keys(headers)[0]})`);
    const mint = await callGateway(gw, '/.auth/tokens', { method: 'POST', headers: { ...headers, 'content-type': 'application/json', origin: gw.url }, body: JSON.stringify({ name: 'x' }) });
    t.equal(mint.status, 401, 'nor mints a gateway token');
  }
});

t.test("Django's own view behind the gateway sees the same user (RemoteUserMiddleware, passCredentials)", async (t) => {
  for (const [what, headers] of [['session', withSession(alice.session)], ['DRF token', withToken(alice.token)], ['simplejwt', withBearer(alice.access)]] as const) {
    const res = await callGateway(gw, '/dj/whoami', { headers: { ...headers, 'x-auth-user': 'dave' } });
    t.equal(res.status, 200, what);
    t.match(res.body, { user: 'alice', remoteUser: 'alice', staff: true }, what);
  }
  const viaSession = await callGateway(gw, '/dj/whoami', { headers: withSession(alice.session) });
  t.equal(viaSession.body.sawSessionCookie, true, 'passCredentials: Django still receives its sessionid');
  const forged = await callGateway(gw, '/dj/whoami', { headers: { 'x-auth-user': 'alice' } });
  t.equal(forged.status, 401, 'a bare X-Auth-User header is no credential');
  t.match(forged.headers['content-type'], /^application\/problem\+json/);
});

t.test('forged and tampered credentials are refused and never reach the upstream', async (t) => {
  const unknown = await viaEcho(gw, withSession(randomBytes(16).toString('hex')));
  t.equal(unknown.status, 401);
  t.equal(unknown.code, 'unauthenticated', 'a sessionid with no live row counts as absent');
  t.match(String(unknown.res.headers['set-cookie']), /^sessionid=;/, 'and is cleared');
  t.equal(unknown.reached, 0);

  const chainGoesOn = await viaEcho(gw, { ...withSession(randomBytes(16).toString('hex')), ...withToken(alice.token) });
  t.equal(chainGoesOn.upstream?.['x-auth-user'], 'alice', 'absent: the next authenticator of the chain answers');

  const anon = await viaEcho(gw, withSession(site.anonymousSession));
  t.equal(anon.code, 'unauthenticated', 'a session without a signed-in user is no login');
  t.equal(anon.res.headers['set-cookie'], undefined, "and stays Django's (not cleared)");

  const malformed = await viaEcho(gw, { cookie: 'sessionid=../x' });
  t.equal(malformed.code, 'unauthenticated');

  // A row whose data was altered: flip the last signature character; and a legacy row whose hash no longer matches.
  const { rows } = await db.query<{ session_data: string; expire_date: Date }>('SELECT session_data, expire_date FROM django_session WHERE session_key = $1', [alice.session]);
  const data = rows[0]!.session_data;
  const flipped = data.slice(0, -1) + (data.endsWith('A') ? 'B' : 'A');
  const legacy = Buffer.from((await db.query<{ session_data: string }>('SELECT session_data FROM django_session WHERE session_key = $1', [carol.legacySession])).rows[0]!.session_data, 'base64').toString('latin1');
  const legacyForged = Buffer.from(legacy.replace('"_auth_user_id":"3"', '"_auth_user_id":"1"'), 'latin1').toString('base64');
  t.not(legacyForged, Buffer.from(legacy, 'latin1').toString('base64'), 'the legacy payload names carol');
  for (const [what, forged] of [['bad signature', flipped], ['legacy payload changed to alice', legacyForged]] as const) {
    const key = randomBytes(16).toString('hex');
    await db.query('INSERT INTO django_session (session_key, session_data, expire_date) VALUES ($1, $2, $3)', [key, forged, rows[0]!.expire_date]);
    const r = await viaEcho(gw, withSession(key));
    t.equal(r.status, 401, what);
    t.equal(r.code, 'invalid_credentials', what);
    t.equal(r.reached, 0, what);
  }

  // A genuine row of alice's, but past its expire_date: absent, as Django's own query has it.
  const expiredKey = randomBytes(16).toString('hex');
  await db.query("INSERT INTO django_session (session_key, session_data, expire_date) VALUES ($1, $2, now() - interval '1 minute')", [expiredKey, data]);
  const expired = await viaEcho(gw, withSession(expiredKey));
  t.equal(expired.code, 'unauthenticated', 'an expired row counts as absent');
  t.equal(expired.reached, 0);

  const tokenFlipped = alice.token.slice(0, -1) + (alice.token.endsWith('0') ? '1' : '0');
  for (const [what, headers] of [['a changed DRF key', withToken(tokenFlipped)], ['an unknown DRF key', withToken(randomBytes(20).toString('hex'))]] as const) {
    const r = await viaEcho(gw, headers);
    t.equal(r.status, 401, what);
    t.equal(r.code, 'invalid_token', what);
    t.equal(r.reached, 0, what);
  }

  const [h, p, sig] = alice.access.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const hs = (key: string, claims: Record<string, unknown>) => createSigner({ key, algorithm: 'HS256', noTimestamp: true })(claims);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = Math.floor(Date.now() / 1000);
  const forgeries: [string, string, string][] = [
    ['payload changed to another user', `${h}.${b64({ ...payload, user_id: 2 })}.${sig}`, 'invalid_token'],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`, 'invalid_token'],
    ['another HMAC key', hs(NEW_KEY, payload), 'invalid_token'],
    ['RS256 with its own key', createSigner({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', noTimestamp: true })(payload), 'invalid_token'],
    ['HS384 with the right key', createSigner({ key: SITE_KEY, algorithm: 'HS384', noTimestamp: true })(payload), 'invalid_token'],
    ['a refresh token', alice.refresh, 'invalid_token'],
    ['no exp', hs(SITE_KEY, { token_type: 'access', user_id: 1, jti: 'x' }), 'invalid_token'],
    ['expired', hs(SITE_KEY, { ...payload, exp: now - 60 }), 'token_expired'],
  ];
  for (const [what, jwt, code] of forgeries) {
    const r = await viaEcho(gw, withBearer(jwt));
    t.equal(r.status, 401, what);
    t.equal(r.code, code, what);
    t.equal(r.reached, 0, what);
  }
  const fresh = await viaEcho(gw, withBearer(hs(SITE_KEY, { ...payload, exp: now + 60 })));
  t.equal(fresh.upstream?.['x-auth-user'], 'alice', 'the same claims signed with SIGNING_KEY pass: the refusals above are the forgery');

  // An accepted token is remembered, but never past its exp: the second request is answered from
  // the gateway's memory, the one after exp is refused as expired.
  const exp = Math.floor(Date.now() / 1000) + 2;
  const short = hs(SITE_KEY, { ...payload, exp });
  for (let i = 0; i < 2; i++) t.equal((await viaEcho(gw, withBearer(short))).upstream?.['x-auth-user'], 'alice', 'valid until exp');
  t.ok(await waitFor(async () => (await viaEcho(gw, withBearer(short))).code === 'token_expired', 10_000, 100), 'refused as expired once exp has passed');
  t.ok(Date.now() >= exp * 1000, 'not before exp');
});

t.test('the gateway CSRF rule applies to django-session like session', async (t) => {
  const noOrigin = await viaEcho(gw, withSession(alice.session), 'POST');
  t.equal(noOrigin.status, 403);
  t.equal(noOrigin.code, 'csrf');
  t.equal(noOrigin.reached, 0);
  const sameOrigin = await viaEcho(gw, { ...withSession(alice.session), origin: gw.url }, 'POST');
  t.equal(sameOrigin.status, 200);
  const token = await viaEcho(gw, withToken(alice.token), 'POST');
  t.equal(token.status, 200, 'a token is no ambient credential');
});

t.test('a password change, a deactivated user and a logout end access within cacheTtl', async (t) => {
  const ok = async (headers: Record<string, string>) => (await viaEcho(gw, headers)).status === 200;
  t.ok(await ok(withSession(bob.session)), 'bob signed in');
  await fixture('set-password', 'bob', 'a brand new password');
  const changed = Date.now();
  t.ok(await waitFor(async () => !(await ok(withSession(bob.session))), 10_000, 50), 'bob session refused after the password change');
  const took = Date.now() - changed;
  const r = await viaEcho(gw, withSession(bob.session));
  t.equal(r.code, 'invalid_credentials');
  // cacheTtl plus polling and scheduling slack on a loaded machine.
  t.ok(took <= CACHE_TTL_MS + 1500, `within cacheTtl (${took} ms after the change, cacheTtl ${CACHE_TTL_MS} ms)`);
  t.ok(await ok(withToken(bob.token)), 'a DRF token survives a password change, as in DRF');

  for (const creds of [withSession(dave.session), withToken(dave.token), withBearer(dave.access)]) t.ok(await ok(creds), 'dave, before');
  await fixture('deactivate', 'dave');
  for (const creds of [withSession(dave.session), withToken(dave.token), withBearer(dave.access)]) {
    t.ok(await waitFor(async () => !(await ok(creds)), 10_000, 50), `dave refused once inactive (${Object.values(creds)[0]!.slice(0, 9)}…)`);
  }

  t.ok(await ok(withSession(carol.session)), 'carol signed in');
  await fixture('logout', carol.session);
  t.ok(await waitFor(async () => (await viaEcho(gw, withSession(carol.session))).code === 'unauthenticated', 10_000, 50), 'a deleted row counts as absent');
});

t.test('SECRET_KEY_FALLBACKS: a rotated key still reads old sessions; simplejwt stays bound to its one key', async (t) => {
  const rotated = await startTestGateway(t, gatewayConfig({ secretKey: [NEW_KEY, SITE_KEY] }), { logLevel: 'warn' });
  const s = await viaEcho(rotated, withSession(alice.session));
  t.equal(s.upstream?.['x-auth-user'], 'alice', 'session signed and hashed with the fallback key');
  const j = await viaEcho(rotated, withBearer(alice.access));
  t.equal(j.status, 401, 'an access token signed with the old key is refused (SIGNING_KEY = the current key)');

  const explicit = await startTestGateway(t, gatewayConfig({ secretKey: NEW_KEY, jwt: { secret: SITE_KEY } }), { logLevel: 'warn' });
  t.equal((await viaEcho(explicit, withBearer(alice.access))).upstream?.['x-auth-user'], 'alice', 'secret: sets SIGNING_KEY');
  const refused = await viaEcho(explicit, withSession(alice.session));
  t.equal(refused.code, 'invalid_credentials', 'a session signed with a key not configured is refused');
});

t.test('warm: no database round trip per request; a cold lookup with the database gone fails closed', async (t) => {
  const relay = await startDbRelay();
  const warm = await startTestGateway(t, gatewayConfig({ dbUrl: relay.url, cacheTtl: '60s' }), { logLevel: 'warn' });
  const creds = [withSession(alice.session), withToken(alice.token), withBearer(alice.access)];
  for (const c of creds) t.equal((await viaEcho(warm, c)).status, 200, 'warming');
  const before = relay.bytes();
  for (let i = 0; i < 20; i++) for (const c of creds) if ((await viaEcho(warm, c)).status !== 200) t.fail('warm request failed');
  t.equal(relay.bytes(), before, '60 warm requests sent nothing to PostgreSQL');
  relay.cut();
  for (const c of creds) t.equal((await viaEcho(warm, c)).status, 200, 'cached credentials keep working while the database is away');
  const cold = await viaEcho(warm, withToken(bob.token));
  t.equal(cold.status, 503);
  t.equal(cold.code, 'store_unavailable');
  t.equal(cold.reached, 0);
});

t.test('users:changed from any instance drops every instance\'s cached Django sessions, tokens and users at once', async (t) => {
  const prefix = `agdj${randomBytes(4).toString('hex')}:`;
  t.teardown(() => deleteRedisKeys(prefix));
  const store = { driver: 'redis', redis: { url: REDIS_URL, keyPrefix: prefix } };
  const cfg = gatewayConfig({ cacheTtl: '10m', store });
  const [one, two] = [await startTestGateway(t, cfg, { logLevel: 'warn' }), await startTestGateway(t, cfg, { logLevel: 'warn' })];
  const creds = [withSession(carol.legacySession!), withToken(carol.token), withBearer(carol.access)];
  for (const g of [one, two]) for (const c of creds) t.equal((await viaEcho(g, c)).status, 200, 'carol, warm');
  await db.query("UPDATE auth_user SET is_active = false WHERE username = 'carol'");
  t.teardown(() => db.query("UPDATE auth_user SET is_active = true WHERE username = 'carol'"));
  for (const c of creds) t.equal((await viaEcho(one, c)).status, 200, 'still cached (cacheTtl 10m): the invalidation below is what ends it');
  const publisher = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log: { info: () => undefined, warn: () => undefined, error: () => undefined } });
  t.teardown(() => publisher.close());
  await publisher.connected();
  await publishUsersChanged(publisher, 'carol');
  for (const g of [one, two]) {
    for (const c of creds) t.ok(await waitFor(async () => (await viaEcho(g, c)).status === 401, 5000, 25), 'refused on every instance');
  }
});
