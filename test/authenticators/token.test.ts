import t from 'tap';
import { randomUUID } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import { createTokenAuthenticator } from '../../src/pipeline/authenticators/token.js';
import { acquireApiTokens, REVOKED_CHANNEL } from '../../src/tokens/api-tokens.js';
import type { AuthOutcome } from '../../src/pipeline/types.js';
import { authRequest, deleteRedisKeys, FakeUsers, makeContext, REDIS_URL, silentLog, waitFor } from '../tokens/_fixtures.js';

const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

t.test('what is mine: Token <key>, or Bearer <key> with the configured prefix', async (t) => {
  const store = new MemoryStore();
  const ctx = makeContext(store);
  const auth = createTokenAuthenticator('api-token', { type: 'token' }, ctx);
  const { service, release } = acquireApiTokens(ctx);
  t.teardown(async () => {
    release();
    await auth.close?.();
    await store.close();
  });
  const { token, id, createdAt, expiresAt } = await service.createToken({ user: 'alice', name: 'x', scopes: ['orders:read'] });

  for (const header of [`Token ${token}`, `token ${token}`, `TOKEN ${token}`, `Bearer ${token}`, `bearer ${token}`]) {
    const out = await auth.authenticate(authRequest({ authorization: header }));
    t.equal(out.kind, 'identity', header.split(' ')[0]!);
    if (out.kind === 'identity') {
      t.same(out.identity, {
        user: 'alice',
        email: 'alice@example.test',
        groups: ['staff'],
        scopes: ['orders:read'],
        method: 'token',
        authenticator: 'api-token',
        mfa: false,
        amr: ['token'],
        authTime: createdAt,
        subject: 'alice',
        tokenId: id,
        expiresAt,
      });
    }
  }
  t.equal((await auth.authenticate(authRequest({}))).kind, 'not-mine');
  t.equal((await auth.authenticate(authRequest({ authorization: 'Basic YWxpY2U6cHc=' }))).kind, 'not-mine');
  t.equal((await auth.authenticate(authRequest({ authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig' }))).kind, 'not-mine', 'a Bearer value without our prefix belongs to jwt/introspection');
  t.equal((await auth.authenticate(authRequest({ authorization: `Bearer ${token.slice(4)}` }))).kind, 'not-mine');
  t.equal(code(await auth.authenticate(authRequest({ authorization: 'Token ' }))), 'invalid_token');
  t.equal(code(await auth.authenticate(authRequest({ authorization: 'Token abc' }))), 'invalid_token');
  t.equal(code(await auth.authenticate(authRequest({ authorization: `Token ${token}x` }))), 'invalid_token');
  t.equal(code(await auth.authenticate(authRequest({ authorization: `Bearer agt_${'A'.repeat(5000)}` }))), 'invalid_token');
  t.equal(code(await auth.authenticate(authRequest({ authorization: `Token ${token.toUpperCase()}` }))), 'invalid_token', 'tokens are case-sensitive');
  t.equal(auth.challenge?.(), 'Token', "DRF's challenge");
});

t.test('revoked, expired, disabled or unknown users are refused; store down fails closed', async (t) => {
  const store = new MemoryStore();
  const users = new FakeUsers([{ username: 'alice' }, { username: 'svc-ci' }]);
  const ctx = makeContext(store, { users });
  const auth = createTokenAuthenticator('api-token', { type: 'token' }, ctx);
  const { service, release } = acquireApiTokens(ctx);
  t.teardown(async () => {
    release();
    await auth.close?.();
  });
  const req = (tok: string) => authRequest({ authorization: `Token ${tok}` });
  const a = await service.createToken({ user: 'alice', name: 'a' });
  const short = await service.createToken({ user: 'alice', name: 'short', ttlMs: 1000 });
  const svcToken = await service.createToken({ user: 'svc-ci', name: 'ci' });
  const ghost = await service.createToken({ user: 'nobody', name: 'cli-made' });

  t.equal(code(await auth.authenticate(req(a.token))), 'identity');
  await service.revokeToken('alice', a.id);
  t.equal(code(await auth.authenticate(req(a.token))), 'token_revoked');

  t.equal(code(await auth.authenticate(req(ghost.token))), 'invalid_token', 'a token whose user is not in the directory is refused');
  t.equal(code(await auth.authenticate(req(svcToken.token))), 'identity');
  users.put({ username: 'svc-ci', disabled: true });
  t.equal(code(await auth.authenticate(req(svcToken.token))), 'invalid_token', 'disabling the user stops the token at once');

  t.ok(await waitFor(async () => code(await auth.authenticate(req(short.token))) === 'token_expired', 5000, 50), 'expired');

  const fresh = await service.createToken({ user: 'alice', name: 'uncached' });
  await store.close();
  t.equal(code(await auth.authenticate(req(fresh.token))), 'store_unavailable');
});

t.test('redis: a token revoked on instance A stops working on instance B within 1 s', async (t) => {
  const prefix = `test:${randomUUID()}:`;
  const storeA = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log: silentLog });
  const storeB = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, log: silentLog });
  await Promise.all([storeA.connected(), storeB.connected()]);
  const ctxA = makeContext(storeA);
  const ctxB = makeContext(storeB);
  const authA = createTokenAuthenticator('api-token', { type: 'token' }, ctxA);
  const authB = createTokenAuthenticator('api-token', { type: 'token' }, ctxB);
  const { service: tokensA, release } = acquireApiTokens(ctxA);
  t.teardown(async () => {
    release();
    await authA.close?.();
    await authB.close?.();
    await Promise.all([storeA.close(), storeB.close()]);
    await deleteRedisKeys(prefix);
  });
  const { token, id } = await tokensA.createToken({ user: 'alice', name: 'x' });
  const req = authRequest({ authorization: `Bearer ${token}` });
  t.equal(code(await authA.authenticate(req)), 'identity');
  t.equal(code(await authB.authenticate(req)), 'identity', 'B accepts (and caches) the token');

  let probed = false;
  const off = storeB.subscribe(REVOKED_CHANNEL, (m) => void (m === 'probe' && (probed = true)));
  t.teardown(off);
  t.ok(await waitFor(async () => (await storeA.publish(REVOKED_CHANNEL, 'probe'), probed), 5000, 50), "B's subscription is live");

  const started = Date.now();
  await tokensA.revokeToken('alice', id);
  t.equal(code(await authA.authenticate(req)), 'token_revoked');
  t.ok(await waitFor(async () => code(await authB.authenticate(req)) === 'token_revoked', 1000, 10));
  t.ok(Date.now() - started <= 1000, `B refused the token ${Date.now() - started} ms after the revocation`);
});
