import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { MemoryStore } from '../../src/store/memory.js';
import { createLockout, type LockoutConfig } from '../../src/credentials/lockout.js';
import { UsersFileDirectory } from '../../src/credentials/users-file.js';
import { hashPassword, verifyPassword } from '../../src/credentials/passwords.js';
import { createBasicAuthenticator, type BasicAuthenticatorOptions } from '../../src/pipeline/authenticators/basic.js';
import type { GatewayContext } from '../../src/context.js';
import type { AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';

const silent = pino({ level: 'silent' });
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const request = (user: string, password: string, ip = '10.0.0.1'): AuthRequest => ({
  method: 'GET',
  path: '/basic/x',
  query: '',
  host: 'gw.test',
  headers: { authorization: `Basic ${b64(`${user}:${password}`)}` },
  ip,
  cookies: {},
  log: silent,
});
const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

let HASH_A = '';
let HASH_B = '';
t.before(async () => {
  HASH_A = await hashPassword('first-password');
  HASH_B = await hashPassword('second-password');
});
const usersYaml = (alicePassword: string, bobDisabled = false) =>
  `users:\n  alice: { password: "${alicePassword}" }\n  bob: { password: "${HASH_A}", disabled: ${bobDisabled} }\n`;

async function setup(t: { teardown(fn: () => unknown): void }, opts: BasicAuthenticatorOptions & { lockout?: LockoutConfig; cacheTtl?: string; watch?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-basic-cache-'));
  const path = join(dir, 'users.yaml');
  writeFileSync(path, usersYaml(HASH_A));
  const users = await UsersFileDirectory.open({ path, log: silent, watch: opts.watch ?? false });
  const store = new MemoryStore();
  const ctx = { users, store, lockout: createLockout(store, opts.lockout ?? {}), cacheKey: randomBytes(32), log: silent } as unknown as GatewayContext;
  let calls = 0;
  const verify = opts.verify ?? ((p: string, h: string) => {
    calls++;
    return verifyPassword(p, h);
  });
  const basic = createBasicAuthenticator('b', { type: 'basic', ...(opts.cacheTtl ? { cacheTtl: opts.cacheTtl } : {}) }, ctx, { ...opts, verify });
  t.teardown(async () => {
    await basic.close?.();
    await users.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ctx, users, store, path, basic, calls: () => calls };
}

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

t.test('a correct password is hashed once, then served from the cache', async (t) => {
  const { basic, calls } = await setup(t);
  for (let i = 0; i < 5; i++) t.equal(code(await basic.authenticate(request('alice', 'first-password'))), 'identity');
  t.equal(calls(), 1, 'one hash computation for five requests');
  t.equal(basic.stats().cached, 1);
  const outcome = await basic.authenticate(request('alice', 'first-password'));
  t.equal(outcome.kind === 'identity' && outcome.identity.authTime, Math.floor(Date.now() / 1000), 'authTime is now on each hit');
  // Another password for the same user is a different entry, verified on its own.
  t.equal(code(await basic.authenticate(request('alice', 'first-passwordX'))), 'invalid_credentials');
  t.equal(calls(), 2);
});

t.test('wrong passwords are never cached', async (t) => {
  const { basic, calls } = await setup(t, { lockout: { maxFailures: 100, maxFailuresPerAddress: 100 } });
  for (let i = 0; i < 4; i++) t.equal(code(await basic.authenticate(request('alice', 'nope'))), 'invalid_credentials');
  t.equal(calls(), 4, 'every wrong attempt is checked again (and counted by the lockout)');
  t.equal(basic.stats().cached, 0);
});

t.test('concurrent identical misses share one hash computation', async (t) => {
  const { basic, calls } = await setup(t);
  const outcomes = await Promise.all(Array.from({ length: 12 }, () => basic.authenticate(request('alice', 'first-password'))));
  t.ok(outcomes.every((o) => o.kind === 'identity'));
  t.equal(calls(), 1);
  t.equal(basic.stats().inFlight, 0, 'in-flight map emptied');
  const wrong = await Promise.all(Array.from({ length: 6 }, () => basic.authenticate(request('alice', 'bad'))));
  t.ok(wrong.every((o) => code(o) === 'invalid_credentials'));
  t.equal(calls(), 2, 'identical wrong guesses in flight together are one check');
});

t.test('cache entries expire after cacheTtl', async (t) => {
  const { basic, calls } = await setup(t, { cacheTtl: '150ms' });
  await basic.authenticate(request('alice', 'first-password'));
  await basic.authenticate(request('alice', 'first-password'));
  t.equal(calls(), 1);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(code(await basic.authenticate(request('alice', 'first-password'))), 'identity');
  t.equal(calls(), 2, 'verified again after the TTL');
});

t.test('a changed password or a disabled user stops cached credentials within 1 s (file edit)', async (t) => {
  // Polling while bob is disabled records failures: keep the lockout out of this test's way.
  const { basic, path } = await setup(t, { watch: true, lockout: { maxFailures: 10_000, maxFailuresPerAddress: 10_000 } });
  t.equal(code(await basic.authenticate(request('alice', 'first-password'))), 'identity');
  t.equal(code(await basic.authenticate(request('bob', 'first-password'))), 'identity');
  writeFileSync(path, usersYaml(HASH_B, true));
  const took = await until(async () => code(await basic.authenticate(request('alice', 'first-password'))) === 'invalid_credentials', 'old password refused');
  t.ok(took < 1000, `old password refused after ${took} ms`);
  t.equal(code(await basic.authenticate(request('bob', 'first-password'))), 'invalid_credentials', 'disabled bob refused');
  t.equal(code(await basic.authenticate(request('alice', 'second-password'))), 'identity', 'the new password works');
  writeFileSync(path, usersYaml(HASH_B, false));
  await until(async () => code(await basic.authenticate(request('bob', 'first-password'))) === 'identity', 'bob re-enabled');
});

t.test('memory stays bounded under 20k distinct wrong credentials', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const verify = async (): Promise<boolean> => {
    calls++;
    await gate;
    return false;
  };
  const { basic } = await setup(t, { verify, inFlightMax: 500, cacheMax: 1000, lockout: { maxFailures: 1_000_000, maxFailuresPerAddress: 1_000_000 } });
  let maxInFlight = 0;
  const pending: Promise<AuthOutcome>[] = [];
  for (let i = 0; i < 20_000; i++) {
    pending.push(Promise.resolve(basic.authenticate(request('alice', `guess-${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`))));
    if (i % 1000 === 0) {
      await new Promise((r) => setImmediate(r));
      maxInFlight = Math.max(maxInFlight, basic.stats().inFlight);
    }
  }
  await until(async () => calls === 20_000, 'all checks started', 20_000);
  maxInFlight = Math.max(maxInFlight, basic.stats().inFlight);
  t.ok(maxInFlight <= 500, `in-flight map peaked at ${maxInFlight} (bound 500)`);
  release();
  const outcomes = await Promise.all(pending);
  t.ok(outcomes.every((o) => code(o) === 'invalid_credentials'));
  const stats = basic.stats();
  t.same({ cached: stats.cached, inFlight: stats.inFlight }, { cached: 0, inFlight: 0 });
  t.ok(stats.lockMemo <= 1000, `lock memo bounded (${stats.lockMemo})`);
});

t.test('store down: cached credentials keep working (SPEC 8), new ones fail closed', async (t) => {
  const { basic, store } = await setup(t, { lockMemoMs: 20 });
  t.equal(code(await basic.authenticate(request('alice', 'first-password'))), 'identity');
  await store.close();
  await new Promise((r) => setTimeout(r, 40));
  t.equal(code(await basic.authenticate(request('alice', 'first-password'))), 'identity', 'already proven credential');
  t.equal(code(await basic.authenticate(request('bob', 'first-password'))), 'store_unavailable', 'not in the cache: 503');
  t.equal(code(await basic.authenticate(request('alice', 'guess'))), 'store_unavailable', 'no guessing while degraded');
});

t.test('cacheTtl 0 disables the cache', async (t) => {
  const { basic, calls } = await setup(t, { cacheTtl: '0s' });
  await basic.authenticate(request('alice', 'first-password'));
  await basic.authenticate(request('alice', 'first-password'));
  t.equal(calls(), 2);
});
