// The `jwt` authenticator's verified-token cache: a hit skips decoding and verification only; expiry,
// the denylist and the user check still apply on every request, and nothing unbounded is remembered.
import t from 'tap';
import { createJwtAuthenticator, verifiedTokenCacheSize } from '../../src/pipeline/authenticators/jwt.js';
import type { AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';
import { issueAccessToken, jwtSettings, selfIssuer } from '../../src/tokens/jwt-issuer.js';
import { JwtService } from '../../src/tokens/refresh.js';
import { testContext, type Teardown } from '../jwt/helpers.js';

const now = () => Math.floor(Date.now() / 1000);

function req(token: string): AuthRequest {
  return { method: 'GET', path: '/api/x', query: '', host: 'gw.test', headers: { authorization: `Bearer ${token}` }, ip: '127.0.0.1', cookies: {}, log: console as unknown as AuthRequest['log'] };
}

function code(o: AuthOutcome): string {
  return o.kind === 'reject' ? o.code : o.kind;
}

async function setup(t: Teardown, cfg: Record<string, unknown> = {}) {
  const ctx = await testContext(t);
  const alice = ctx.users.add('alice', { email: 'alice@example.com', groups: ['staff'] });
  const auth = createJwtAuthenticator('local', { type: 'jwt', issuer: 'self', ...cfg }, ctx);
  t.teardown(() => auth.close?.());
  const service = new JwtService(ctx);
  t.teardown(() => service.close());
  return { ctx, alice, auth, service, issuer: selfIssuer(ctx) };
}

/** Runs `fn` with Date.now shifted by `ms` (fast-jwt and the cache both read Date.now). */
async function later<T>(t: Teardown, ms: number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  const restore = () => {
    Date.now = real;
  };
  t.teardown(restore);
  Date.now = () => real() + ms;
  try {
    return await fn();
  } finally {
    restore();
  }
}

t.test('a hit returns the same identity as the verification', async (t) => {
  const { auth, service, alice } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd', 'otp'], authTime: now() - 5, scopes: ['orders:read'] });
  t.equal(verifiedTokenCacheSize(auth), 0);
  const first = await auth.authenticate(req(pair.access));
  t.equal(first.kind, 'identity');
  t.equal(verifiedTokenCacheSize(auth), 1, 'remembered after verification');
  const second = await auth.authenticate(req(pair.access));
  t.equal(second.kind, 'identity');
  if (first.kind !== 'identity' || second.kind !== 'identity') return;
  t.same(second.identity, first.identity);
  t.match(second.identity, { user: 'alice', groups: ['staff'], scopes: ['orders:read'], mfa: true, authenticator: 'local' });
  t.ok(Object.isFrozen(second.identity) && Object.isFrozen(second.identity.groups), 'a shared identity cannot be altered');
  t.equal(verifiedTokenCacheSize(auth), 1);
});

t.test('a cached token past exp + clock tolerance is refused as token_expired', async (t) => {
  const { ctx, auth, issuer } = await setup(t);
  const token = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: 'soon', iat: now(), exp: now() + 60, token_use: 'access' }, { typ: 'at+jwt' });
  t.equal(code(await auth.authenticate(req(token))), 'identity');
  t.equal(verifiedTokenCacheSize(auth), 1);
  t.equal(await later(t, 80_000, async () => code(await auth.authenticate(req(token)))), 'identity', 'within the 30 s tolerance');
  t.equal(await later(t, 95_000, async () => code(await auth.authenticate(req(token)))), 'token_expired');
  t.equal(await later(t, 95_000, async () => code(await auth.authenticate(req(token)))), 'token_expired', 'again');
});

t.test('a cached token older than maxAge is refused as token_expired', async (t) => {
  const { ctx, auth, issuer } = await setup(t, { maxAge: '20s' });
  const token = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: 'aged', iat: now(), exp: now() + 600, token_use: 'access' }, { typ: 'at+jwt' });
  t.equal(code(await auth.authenticate(req(token))), 'identity');
  t.equal(await later(t, 25_000, async () => code(await auth.authenticate(req(token)))), 'token_expired');
});

t.test('a token revoked after being cached is refused on the next request', async (t) => {
  const { ctx, auth, service, alice } = await setup(t);
  const single = issueAccessToken(ctx, jwtSettings(undefined), { user: alice, amr: ['pwd'], authTime: now() });
  t.equal(code(await auth.authenticate(req(single.token))), 'identity');
  t.equal(code(await auth.authenticate(req(single.token))), 'identity');
  await service.denylist.revoke('jti', single.jti, single.exp);
  t.equal(code(await auth.authenticate(req(single.token))), 'token_revoked', 'by jti');

  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(code(await auth.authenticate(req(pair.access))), 'identity');
  t.equal(code(await auth.authenticate(req(pair.access))), 'identity');
  await service.revoke(pair.refresh);
  t.equal(code(await auth.authenticate(req(pair.access))), 'token_revoked', 'by family');
});

t.test('a user disabled, changed or removed after caching is refused as today', async (t) => {
  const { ctx, auth, service, alice } = await setup(t);
  const bob = ctx.users.add('bob');
  const carol = ctx.users.add('carol');
  const tokens = await Promise.all([alice, bob, carol].map(async (u) => (await service.issueForLogin(u, { amr: ['pwd'], authTime: now() })).access));
  for (const tok of tokens) {
    t.equal(code(await auth.authenticate(req(tok))), 'identity');
    t.equal(code(await auth.authenticate(req(tok))), 'identity');
  }
  t.equal(verifiedTokenCacheSize(auth), 3);
  ctx.users.update('alice', { disabled: true });
  ctx.users.update('bob', { passwordHash: 'changed' });
  ctx.users.users.delete('carol');
  for (const [i, tok] of tokens.entries()) t.equal(code(await auth.authenticate(req(tok))), 'token_revoked', `user ${i}`);
});

t.test('a token differing only in its signature is not served from the cache', async (t) => {
  const { auth, service, alice } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(code(await auth.authenticate(req(pair.access))), 'identity');
  const [h, p, s] = pair.access.split('.') as [string, string, string];
  const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  for (const sig of [flipped, `${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`, '', `${s}==`]) {
    t.equal(code(await auth.authenticate(req(`${h}.${p}.${sig}`))), 'invalid_token');
  }
  t.equal(verifiedTokenCacheSize(auth), 1, 'rejections are not remembered');
  t.equal(code(await auth.authenticate(req(pair.access))), 'identity');
});

t.test('bounded: a flood of invalid tokens stores nothing, a flood of valid ones at most the max', async (t) => {
  const { ctx, auth, issuer } = await setup(t);
  const exp = now() + 600;
  const base = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: 'base', iat: now(), exp, token_use: 'access' }, { typ: 'at+jwt' });
  const [h, p, s] = base.split('.') as [string, string, string];
  for (let i = 0; i < 20_000; i++) {
    const junk = `${h}.${p}.${s.slice(0, -8)}${i.toString(36).padStart(8, 'A')}`;
    if (code(await auth.authenticate(req(junk))) !== 'invalid_token') t.fail(`junk ${i} accepted`);
  }
  t.equal(verifiedTokenCacheSize(auth), 0, '20k invalid tokens: nothing cached');

  for (let i = 0; i < 20_000; i++) {
    const tok = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: `j${i}`, iat: now(), exp, token_use: 'access' }, { typ: 'at+jwt' });
    if (code(await auth.authenticate(req(tok))) !== 'identity') t.fail(`token ${i} refused`);
  }
  const size = verifiedTokenCacheSize(auth) ?? Infinity;
  t.ok(size > 0 && size <= 10_000, `20k valid tokens: ${size} cached`);

  const long = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: 'long', iat: now(), exp, token_use: 'access', pad: 'x'.repeat(5000) }, { typ: 'at+jwt' });
  const before = verifiedTokenCacheSize(auth);
  t.equal(code(await auth.authenticate(req(long))), 'identity');
  t.equal(code(await auth.authenticate(req(long))), 'identity');
  t.equal(verifiedTokenCacheSize(auth), before, 'a token over 4 KiB is verified, not remembered');
  const fresh = createJwtAuthenticator('other', { type: 'jwt', issuer: 'self' }, ctx);
  t.teardown(() => fresh.close?.());
  t.equal(code(await fresh.authenticate(req(long))), 'identity');
  t.equal(verifiedTokenCacheSize(fresh), 0);
});
