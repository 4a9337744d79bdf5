// Refresh-token families (THREATS 50-53): rotation, reuse detection, the grace window under
// concurrency, user changes, token-type confusion and revocation.
import t from 'tap';
import { GatewayError } from '../../src/errors.js';
import { createJwtAuthenticator } from '../../src/pipeline/authenticators/jwt.js';
import type { AuthRequest } from '../../src/pipeline/types.js';
import { JwtService, revokeUserJwtFamilies, type TokenPair } from '../../src/tokens/refresh.js';
import { recordingLogger, testContext, type Teardown } from './helpers.js';

const now = () => Math.floor(Date.now() / 1000);
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;

async function setup(t: Teardown, jwt: Record<string, unknown> = {}) {
  const log = recordingLogger();
  const ctx = await testContext(t, { config: { jwt }, log });
  const alice = ctx.users.add('alice', { email: 'alice@example.com', groups: ['staff'] });
  const service = new JwtService(ctx);
  t.teardown(() => service.close());
  const auth = createJwtAuthenticator('local', { type: 'jwt', issuer: 'self' }, ctx);
  t.teardown(() => auth.close?.());
  const accessOk = async (token: string): Promise<string> => {
    const req: AuthRequest = { method: 'GET', path: '/', query: '', host: 'gw.test', headers: { authorization: `Bearer ${token}` }, ip: '127.0.0.1', cookies: {}, log };
    const o = await auth.authenticate(req);
    return o.kind === 'reject' ? o.code : o.kind;
  };
  return { ctx, log, alice, service, accessOk };
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof GatewayError) return `${err.status} ${err.code}`;
    throw err;
  }
}

t.test('issued pair: simplejwt shape, claims and lifetimes', async (t) => {
  const { service, alice } = await setup(t, { accessTtl: '2m', refreshTtl: '3h' });
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.same(headerOf(pair.access), { alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' });
  t.same(headerOf(pair.refresh), { alg: 'EdDSA', typ: 'refresh+jwt', kid: 'k1' });
  const a = claimsOf(pair.access);
  const r = claimsOf(pair.refresh);
  t.match(a, { iss: 'https://gw.test/.auth', sub: 'alice', token_use: 'access', amr: ['pwd'], email: 'alice@example.com', groups: ['staff'] });
  t.equal((a.exp as number) - (a.iat as number), 120);
  t.match(r, { iss: 'https://gw.test/.auth', sub: 'alice', token_use: 'refresh' });
  t.equal((r.exp as number) - (r.iat as number), 3 * 3600);
  t.equal(a.fam, r.fam, 'both belong to one family');
  t.not(a.jti, r.jti);
  t.notOk('ver' in a || 'ver' in r, 'the user version stays in the store');
  t.notOk(JSON.stringify(r).includes('staff'), 'the refresh token carries no authorization data');
});

t.test('rotation with reuse detection: a spent token revokes the family (THREATS 50, 53)', async (t) => {
  const { service, alice, accessOk, log } = await setup(t, { reuseGrace: 0 });
  const first = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const second = await service.refresh(first.refresh);
  t.not(second.refresh, first.refresh);
  t.equal(claimsOf(second.refresh).fam, claimsOf(first.refresh).fam);
  t.equal(await accessOk(second.access), 'identity');
  t.equal(await accessOk(first.access), 'identity', 'the first access token lives until the family dies');

  t.equal(await failure(service.refresh(first.refresh)), '401 token_revoked', 'reuse of the spent token');
  t.ok(log.lines.some((l) => l.level === 'warn' && (l.obj as { event?: string }).event === 'refresh_reuse'), 'reuse is logged as a theft signal');
  t.notOk(JSON.stringify(log.lines).includes(first.refresh), 'the token itself is not logged');
  t.equal(await failure(service.refresh(second.refresh)), '401 token_revoked', 'the child dies with the family');
  t.equal(await accessOk(second.access), 'token_revoked', 'family access tokens stop at once');
  t.equal(await accessOk(first.access), 'token_revoked');
  t.equal(await failure(service.verify(second.access)), '401 token_revoked');

  // Another sign-in of the same user is another family: unaffected.
  const other = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(await failure(service.refresh(other.refresh)), 'ok');
});

t.test('grace window: a retried refresh gets the same pair; after the window it is reuse', async (t) => {
  const { service, alice } = await setup(t, { reuseGrace: '1s' });
  const first = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const a = await service.refresh(first.refresh);
  const b = await service.refresh(first.refresh);
  t.same(b, a, 'same pair inside the grace window');
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(await failure(service.refresh(first.refresh)), '401 token_revoked');
  t.equal(await failure(service.refresh(a.refresh)), '401 token_revoked');
});

t.test('20 parallel refreshes of one token: exactly one child, everybody gets it (THREATS 51)', async (t) => {
  const { service, alice, accessOk } = await setup(t);
  const first = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const results = await Promise.all(Array.from({ length: 20 }, () => service.refresh(first.refresh)));
  const distinct = new Set(results.map((p: TokenPair) => p.refresh));
  t.equal(distinct.size, 1, 'one child refresh token');
  t.equal(new Set(results.map((p) => p.access)).size, 1, 'one child access token');
  const child = results[0]!;
  t.equal(await accessOk(child.access), 'identity');
  const grandchild = await service.refresh(child.refresh);
  t.equal(await accessOk(grandchild.access), 'identity', 'the single branch continues');
});

t.test('parallel refreshes without a grace window: one wins, the rest are reuse', async (t) => {
  const { service, alice } = await setup(t, { reuseGrace: 0 });
  const first = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => service.refresh(first.refresh)));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one success');
  const winner = results.find((r): r is PromiseFulfilledResult<TokenPair> => r.status === 'fulfilled')!.value;
  t.equal(await failure(service.refresh(winner.refresh)), '401 token_revoked', 'no two live branches: the family is gone');
});

t.test('a disabled user or a changed password ends the family at refresh (THREATS 53)', async (t) => {
  const { ctx, service, alice, accessOk } = await setup(t);
  const bob = ctx.users.add('bob');
  const a = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const b = await service.issueForLogin(bob, { amr: ['pwd'], authTime: now() });
  ctx.users.update('alice', { disabled: true });
  ctx.users.update('bob', { passwordHash: 'new-hash' });
  t.equal(await failure(service.refresh(a.refresh)), '401 token_revoked');
  t.equal(await failure(service.refresh(b.refresh)), '401 token_revoked');
  ctx.users.update('alice', { disabled: false });
  t.equal(await failure(service.refresh(a.refresh)), '401 token_revoked', 're-enabling does not revive the family');
  t.equal(await accessOk(a.access), 'token_revoked');
});

t.test('token-type confusion at the refresh endpoint (THREATS 52)', async (t) => {
  const { ctx, service, alice } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(await failure(service.refresh(pair.access)), '400 bad_request', 'an access token is not a refresh token');
  t.equal(await failure(service.refresh('garbage')), '401 invalid_token');
  t.equal(await failure(service.refresh(undefined)), '400 bad_request');
  t.equal(await failure(service.refresh(42)), '400 bad_request');
  const iss = 'https://gw.test/.auth';
  const expired = ctx.signing.sign({ iss, sub: 'alice', jti: 'jexp', fam: 'famx', iat: now() - 7200, exp: now() - 3600, token_use: 'refresh' }, { typ: 'refresh+jwt' });
  t.equal(await failure(service.refresh(expired)), '401 token_expired');
  const mixed = ctx.signing.sign({ iss, sub: 'alice', jti: 'j2', fam: 'f2', exp: now() + 60, token_use: 'access' }, { typ: 'refresh+jwt' });
  t.equal(await failure(service.refresh(mixed)), '401 invalid_token', 'typ and token_use must agree');
  const forgedFamily = ctx.signing.sign({ iss, sub: 'alice', jti: 'j3', fam: 'unknown-family', exp: now() + 60, token_use: 'refresh' }, { typ: 'refresh+jwt' });
  t.equal(await failure(service.refresh(forgedFamily)), '401 token_revoked', 'a family the store does not know');
  t.equal(await failure(service.revoke(pair.access)), '400 bad_request');
});

t.test('verify and revoke', async (t) => {
  const { service, alice, accessOk } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(await failure(service.verify(pair.access)), 'ok');
  t.equal(await failure(service.verify(pair.refresh)), 'ok');
  t.equal(await failure(service.verify('x.y.z')), '401 invalid_token');
  const next = await service.refresh(pair.refresh);
  t.equal(await failure(service.verify(pair.refresh)), '401 token_revoked', 'a spent refresh token no longer verifies');
  await service.revoke(next.refresh);
  t.equal(await failure(service.verify(next.refresh)), '401 token_revoked');
  t.equal(await failure(service.verify(next.access)), '401 token_revoked');
  t.equal(await accessOk(pair.access), 'token_revoked');
  t.equal(await failure(service.refresh(next.refresh)), '401 token_revoked');
  t.equal(await failure(service.revoke(next.refresh)), 'ok', 'revoking twice is fine');
});

t.test('rotateRefresh: false keeps the refresh token, still checks the family', async (t) => {
  const { ctx, service, alice } = await setup(t, { rotateRefresh: false });
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const a = await service.refresh(pair.refresh);
  const b = await service.refresh(pair.refresh);
  t.equal(a.refresh, pair.refresh);
  t.equal(b.refresh, pair.refresh);
  t.not(a.access, b.access);
  ctx.users.update('alice', { disabled: true });
  t.equal(await failure(service.refresh(pair.refresh)), '401 token_revoked');
});

t.test('logout everywhere: every family of the user is revoked', async (t) => {
  const { ctx, service, alice, accessOk } = await setup(t);
  const bob = ctx.users.add('bob');
  const a1 = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const a2 = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const b1 = await service.issueForLogin(bob, { amr: ['pwd'], authTime: now() });
  t.equal(await revokeUserJwtFamilies(ctx, 'alice'), 2);
  t.equal(await failure(service.refresh(a1.refresh)), '401 token_revoked');
  t.equal(await failure(service.refresh(a2.refresh)), '401 token_revoked');
  t.equal(await accessOk(a2.access), 'token_revoked');
  t.equal(await failure(service.refresh(b1.refresh)), 'ok');
  t.equal(await revokeUserJwtFamilies(ctx, 'nobody'), 0);
});

t.test('the store down: issuance and refresh fail closed with 503', async (t) => {
  const { ctx, service, alice, accessOk } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  t.equal(await accessOk(pair.access), 'identity');
  await ctx.store.close();
  t.equal(await failure(service.issueForLogin(alice, { amr: ['pwd'], authTime: now() })), '503 store_unavailable');
  t.equal(await failure(service.refresh(pair.refresh)), '503 store_unavailable');
  t.equal(await accessOk(pair.access), 'identity', 'self-contained access tokens keep working (SPEC 8)');
});
