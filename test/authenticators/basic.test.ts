import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { MemoryStore } from '../../src/store/memory.js';
import { createLockout } from '../../src/credentials/lockout.js';
import { UsersFileDirectory } from '../../src/credentials/users-file.js';
import { hashPassword } from '../../src/credentials/passwords.js';
import { createBasicAuthenticator, parseBasicAuthorization } from '../../src/pipeline/authenticators/basic.js';
import type { GatewayContext } from '../../src/context.js';
import type { AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';
import type { LockoutConfig } from '../../src/credentials/lockout.js';

const silent = pino({ level: 'silent' });
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

function request(authorization: string | undefined, ip = '10.0.0.1'): AuthRequest {
  return { method: 'GET', path: '/basic/x', query: '', host: 'gw.test', headers: authorization === undefined ? {} : { authorization }, ip, cookies: {}, log: silent };
}

async function setup(t: { teardown(fn: () => unknown): void }, usersYaml: string, lockout: LockoutConfig = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-basic-'));
  const path = join(dir, 'users.yaml');
  writeFileSync(path, usersYaml);
  const users = await UsersFileDirectory.open({ path, log: silent, watch: false });
  const store = new MemoryStore();
  const ctx = { users, store, lockout: createLockout(store, lockout), cacheKey: randomBytes(32), log: silent } as unknown as GatewayContext;
  t.teardown(async () => {
    await users.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ctx, users, store, path };
}

const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

let ALICE_HASH = '';
let COLON_HASH = '';
t.before(async () => {
  ALICE_HASH = await hashPassword('wonderland');
  COLON_HASH = await hashPassword('pa:ss');
});
const USERS = () => `users:
  alice: { email: alice@example.com, password: "${ALICE_HASH}", groups: [staff, admin] }
  colon: { password: "${COLON_HASH}" }
  dora: { password: "${ALICE_HASH}", disabled: true }
`;

t.test('parseBasicAuthorization (THREATS 23)', async (t) => {
  t.equal(parseBasicAuthorization(undefined), undefined);
  t.equal(parseBasicAuthorization('Bearer abc'), undefined, 'other schemes are not mine');
  t.equal(parseBasicAuthorization('Basically abc'), undefined);
  t.same(parseBasicAuthorization(`Basic ${b64('alice:pa:ss')}`), { username: 'alice', password: 'pa:ss' }, 'split at the first colon');
  t.same(parseBasicAuthorization(`basic ${b64('alice:x')}`), { username: 'alice', password: 'x' }, 'scheme is case-insensitive');
  t.same(parseBasicAuthorization(`BASIC ${b64('alice:x')}`), { username: 'alice', password: 'x' });
  t.same(parseBasicAuthorization(`Basic ${b64('ålice:pässword')}`), { username: 'ålice', password: 'pässword' }, 'UTF-8');
  t.same(parseBasicAuthorization(`Basic ${b64('alice:xy').replace(/=+$/, '')}`), { username: 'alice', password: 'xy' }, 'unpadded base64');
  const invalid = [
    'Basic',
    'Basic ',
    `Basic ${b64('alice')}`,
    `Basic ${b64('alice:')}`,
    `Basic ${b64(':secret')}`,
    'Basic !!!notbase64',
    `Basic  ${b64('alice:x')}`,
    `Basic ${b64('alice:x')} `,
    `Basic ${b64('alice:x')}, Bearer y`,
    `Basic x, Bearer y`,
    `Basic\t${b64('alice:x')}`,
    `Basic ${b64('ali\r\nce:x')}`,
    `Basic ${b64('ali\0ce:x')}`,
    `Basic ${b64('alice\u0085:x')}`,
    `Basic ${Buffer.from([0x61, 0xff, 0x3a, 0x78]).toString('base64')}`,
    'Basic YWxpY2U6eA==x',
    'Basic YWxpY2U6eB==',
    'Basic YWxpY2U6e',
    `Basic ${b64('a'.repeat(300) + ':x')}`,
    `Basic ${'A'.repeat(20_000)}`,
  ];
  for (const h of invalid) t.equal(parseBasicAuthorization(h), 'invalid', JSON.stringify(h.slice(0, 40)));
});

t.test('authenticate: identity, rejections and challenge', async (t) => {
  const { ctx } = await setup(t, USERS());
  const basic = createBasicAuthenticator('staff-basic', { type: 'basic', realm: 'staff' }, ctx);
  t.equal(basic.challenge?.(), 'Basic realm="staff", charset="UTF-8"');
  t.equal(createBasicAuthenticator('b', { type: 'basic' }, ctx).challenge?.(), 'Basic realm="authgate", charset="UTF-8"');
  t.equal(code(await basic.authenticate(request(undefined))), 'not-mine');
  t.equal(code(await basic.authenticate(request('Bearer x'))), 'not-mine');

  const before = Math.floor(Date.now() / 1000);
  const ok = await basic.authenticate(request(`Basic ${b64('alice:wonderland')}`));
  t.equal(ok.kind, 'identity');
  if (ok.kind === 'identity') {
    t.match(ok.identity, { user: 'alice', email: 'alice@example.com', method: 'basic', authenticator: 'staff-basic', mfa: false, amr: ['pwd'], subject: 'alice' });
    t.same(ok.identity.groups, ['staff', 'admin']);
    t.same(ok.identity.scopes, []);
    t.ok(ok.identity.authTime >= before && ok.identity.authTime <= before + 2);
  }
  t.equal(code(await basic.authenticate(request(`Basic ${b64('alice@EXAMPLE.com:wonderland')}`))), 'identity', 'by email');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('colon:pa:ss')}`))), 'identity', 'a password with a colon (THREATS 23)');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('colon:pa')}`))), 'invalid_credentials');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('alice:wrong')}`))), 'invalid_credentials');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('nobody:wonderland')}`))), 'invalid_credentials');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('dora:wonderland')}`))), 'invalid_credentials', 'disabled');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('alice')}`))), 'invalid_credentials');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('alice:')}`))), 'invalid_credentials', 'an empty password never reaches a check');
  t.equal(code(await basic.authenticate(request('Basic x, Bearer y'))), 'invalid_credentials');
  const rejection = await basic.authenticate(request(`Basic ${b64('alice:wrong')}`));
  t.notMatch(JSON.stringify(rejection), /wrong|wonderland/, 'no password in a rejection');
});

t.test('lockout: 429 with Retry-After, even for the right password; store down → store_unavailable', async (t) => {
  const { ctx, store } = await setup(t, USERS(), { maxFailures: 3, duration: '10m' });
  const basic = createBasicAuthenticator('b', { type: 'basic' }, ctx);
  for (let i = 0; i < 3; i++) t.equal(code(await basic.authenticate(request(`Basic ${b64('alice:wrong' + i)}`))), 'invalid_credentials');
  const locked = await basic.authenticate(request(`Basic ${b64('alice:wonderland')}`));
  t.equal(code(locked), 'locked');
  if (locked.kind === 'reject') {
    const retry = Number(locked.headers?.['Retry-After']);
    t.ok(retry > 500 && retry <= 600, `Retry-After ${retry}`);
  }
  t.equal(code(await basic.authenticate(request(`Basic ${b64('ALICE:x')}`))), 'locked', 'case variant of the name');
  await store.close();
  t.equal(code(await basic.authenticate(request(`Basic ${b64('bob:x')}`))), 'store_unavailable', 'fails closed');
});

t.test('a locked account refuses cached credentials within 1 s', async (t) => {
  const { ctx } = await setup(t, USERS(), { maxFailures: 3 });
  const basic = createBasicAuthenticator('b', { type: 'basic' }, ctx);
  const good = request(`Basic ${b64('alice:wonderland')}`);
  t.equal(code(await basic.authenticate(good)), 'identity', 'cached now');
  for (let i = 0; i < 3; i++) await basic.authenticate(request(`Basic ${b64('alice:bad' + i)}`, '10.9.9.9'));
  const start = Date.now();
  let outcome = await basic.authenticate(good);
  while (code(outcome) !== 'locked' && Date.now() - start < 3000) {
    await new Promise((r) => setTimeout(r, 50));
    outcome = await basic.authenticate(good);
  }
  t.equal(code(outcome), 'locked');
  t.ok(Date.now() - start <= 1500, `locked after ${Date.now() - start} ms`);
});

t.test('unknown user and wrong password take about the same time', async (t) => {
  const { ctx } = await setup(t, USERS(), { maxFailures: 1000, maxFailuresPerAddress: 1000 });
  const basic = createBasicAuthenticator('b', { type: 'basic' }, ctx);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const wrong: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 9; i++) {
    let s = performance.now();
    t.equal(code(await basic.authenticate(request(`Basic ${b64(`alice:w${i}`)}`))), 'invalid_credentials');
    wrong.push(performance.now() - s);
    s = performance.now();
    t.equal(code(await basic.authenticate(request(`Basic ${b64(`ghost${i}:w${i}`)}`))), 'invalid_credentials');
    unknown.push(performance.now() - s);
  }
  const ratio = median(wrong) / median(unknown);
  t.ok(ratio > 1 / 3 && ratio < 3, `wrong ${median(wrong).toFixed(1)} ms vs unknown ${median(unknown).toFixed(1)} ms`);
});

t.test('bcrypt users: no 72-byte truncation through Basic (THREATS 24)', async (t) => {
  const bcrypt = (await import('bcryptjs')).default;
  const eighty = 'x'.repeat(80);
  const truncated = await bcrypt.hash(eighty.slice(0, 72), 4);
  const { ctx } = await setup(t, `users:\n  bea: { password: "${truncated}" }\n`, { maxFailures: 100 });
  const basic = createBasicAuthenticator('b', { type: 'basic' }, ctx);
  t.equal(code(await basic.authenticate(request(`Basic ${b64('bea:' + eighty.slice(0, 72))}`))), 'identity');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('bea:' + eighty)}`))), 'invalid_credentials');
  t.equal(code(await basic.authenticate(request(`Basic ${b64('bea:' + eighty + 'y'.repeat(100))}`))), 'invalid_credentials');
  const start = performance.now();
  t.equal(code(await basic.authenticate(request(`Basic ${b64('bea:' + 'z'.repeat(1024 * 1024))}`))), 'invalid_credentials', '1 MB password');
  t.ok(performance.now() - start < 500, 'refused quickly');
});
