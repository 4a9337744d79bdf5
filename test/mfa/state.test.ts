// MFA state where it must hold (SPEC 8; issue 11): across a restart on SQLite (with the key
// generated into the store) and across two instances on one Redis — enrolments, used TOTP steps
// and used recovery codes hold; a copy of the SQLite files does not reveal a secret or a code;
// concurrent use of one code on two instances: one wins.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeTempDir } from '../helpers/gateway.js';
import { deleteRedisKeys, REDIS_URL } from '../helpers/redis.js';
import { awayFromStepEdge, call, cookieValue, enrolTotp, json, login, passwordSession, startMfaGateway, totp } from './_mfa.js';

const verify = (base: string, cookie: string, code: string) => call(`${base}/.auth/mfa/verify`, json(cookie, { code }));

t.test('SQLite: a restart keeps enrolments, used codes and recovery codes; the file reveals nothing', async (t) => {
  const dir = makeTempDir(t);
  const session = randomBytes(32).toString('base64url');
  // No secrets.mfa: the key is generated once and kept in the store, like the session secret.
  const config = { store: { driver: 'sqlite', sqlite: { path: './data/authgate.db' } }, secrets: { session, mfa: undefined } };
  const first = await startMfaGateway(t, config, { dir });
  const { secret, recoveryCodes } = await enrolTotp(first.gw.url, await passwordSession(first.gw.url, 'bob'));
  await awayFromStepEdge();
  const step = await totp(secret, Math.floor(Date.now() / 1000) + 30);
  t.equal((await verify(first.gw.url, cookieValue(await login(first.gw.url, 'bob'))!, step)).status, 200);
  t.equal((await verify(first.gw.url, cookieValue(await login(first.gw.url, 'bob'))!, recoveryCodes[0]!)).status, 200);
  await first.gw.close();

  const files = readdirSync(join(dir, 'data')).map((f) => readFileSync(join(dir, 'data', f)).toString('latin1'));
  const dump = files.join('\n');
  t.ok(dump.includes('mfa:totp:bob'), 'the enrolment is in the file');
  t.ok(dump.includes('secrets:mfa'), 'the generated key is kept in the store');
  t.notOk(dump.includes(secret), 'the TOTP secret is not in the file');
  for (const c of recoveryCodes) t.notOk(dump.includes(c) || dump.includes(c.replace('-', '')), 'no recovery code in the file');

  const second = await startMfaGateway(t, config, { dir });
  const pw = await login(second.gw.url, 'bob');
  t.same(pw.json(), { mfaRequired: true, methods: ['totp', 'recovery'] }, 'the enrolment survived');
  const pending = cookieValue(pw)!;
  t.equal((await verify(second.gw.url, pending, step)).status, 401, 'the used TOTP step survived');
  t.equal((await verify(second.gw.url, pending, recoveryCodes[0]!)).status, 401, 'the used recovery code survived');
  t.equal((await verify(second.gw.url, pending, recoveryCodes[1]!)).status, 200, 'an unused recovery code works');
});

t.test('Redis: two instances share enrolments and used codes; one code, two instances: one wins', async (t) => {
  const prefix = `authgate-test-mfa-${randomBytes(6).toString('hex')}:`;
  t.teardown(() => deleteRedisKeys(prefix));
  const config = { store: { driver: 'redis', redis: { url: REDIS_URL, keyPrefix: prefix } }, secrets: { session: randomBytes(32).toString('base64url') } };
  const a = await startMfaGateway(t, config);
  const b = await startMfaGateway(t, config);
  const { secret, recoveryCodes } = await enrolTotp(a.gw.url, await passwordSession(a.gw.url, 'bob'));
  const pw = await login(b.gw.url, 'bob');
  t.same(pw.json(), { mfaRequired: true, methods: ['totp', 'recovery'] }, 'enrolled on A, due on B');

  await awayFromStepEdge();
  const code = await totp(secret, Math.floor(Date.now() / 1000) + 30);
  const pendingA = cookieValue(await login(a.gw.url, 'bob'))!;
  const pendingB = cookieValue(await login(b.gw.url, 'bob'))!;
  const [ra, rb] = await Promise.all([verify(a.gw.url, pendingA, code), verify(b.gw.url, pendingB, code)]);
  t.same([ra.status, rb.status].sort(), [200, 401], 'one code used concurrently on two instances: one wins');

  const p1 = cookieValue(await login(b.gw.url, 'bob'))!;
  t.equal((await verify(b.gw.url, p1, recoveryCodes[0]!)).status, 200);
  const p2 = cookieValue(await login(a.gw.url, 'bob'))!;
  t.equal((await verify(a.gw.url, p2, recoveryCodes[0]!)).status, 401, 'a recovery code used on B is spent on A');
  const raw = JSON.stringify(await a.gw.current().ctx.store.get('mfa:totp:bob'));
  t.notOk(raw.includes(secret), 'sealed in Redis');
});
