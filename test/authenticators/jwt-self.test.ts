// The `jwt` authenticator with `issuer: self`: the gateway's own access tokens, and every way a
// gateway token that is not a live access token must be refused (THREATS 1, 2, 8, 11, 50, 52).
import t from 'tap';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createJwtAuthenticator } from '../../src/pipeline/authenticators/jwt.js';
import type { AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';
import { issueAccessToken, jwtSettings, selfIssuer } from '../../src/tokens/jwt-issuer.js';
import { JwtService } from '../../src/tokens/refresh.js';
import { b64, forge, forgeHmac, testContext, unsigned, type Teardown } from '../jwt/helpers.js';

const now = () => Math.floor(Date.now() / 1000);

function req(headers: Record<string, string>): AuthRequest {
  return { method: 'GET', path: '/api/x', query: '', host: 'gw.test', headers, ip: '127.0.0.1', cookies: {}, log: console as unknown as AuthRequest['log'] };
}
const withBearer = (token: string) => req({ authorization: `Bearer ${token}` });

function code(o: AuthOutcome): string {
  return o.kind === 'reject' ? o.code : o.kind;
}

async function setup(t: Teardown, config: Record<string, unknown> = {}) {
  const ctx = await testContext(t, { config });
  const alice = ctx.users.add('alice', { email: 'alice@example.com', groups: ['staff', 'admin'] });
  const auth = createJwtAuthenticator('local', { type: 'jwt', issuer: 'self' }, ctx);
  t.teardown(() => auth.close?.());
  const service = new JwtService(ctx);
  t.teardown(() => service.close());
  const issuer = selfIssuer(ctx);
  const privateKey = createPrivateKey(readFileSync(join(ctx.configDir, 'data/k1.pem'), 'utf8'));
  return { ctx, alice, auth, service, issuer, privateKey };
}

t.test('a gateway access token gives the identity from its claims', async (t) => {
  const { auth, service, alice } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd', 'otp'], authTime: now() - 10, scopes: ['orders:read', 'x'] });
  const out = await auth.authenticate(withBearer(pair.access));
  t.equal(out.kind, 'identity');
  if (out.kind !== 'identity') return;
  t.match(out.identity, {
    user: 'alice',
    email: 'alice@example.com',
    groups: ['staff', 'admin'],
    scopes: ['orders:read', 'x'],
    method: 'jwt',
    authenticator: 'local',
    mfa: true,
    amr: ['pwd', 'otp'],
  });
  t.ok(out.identity.tokenId);
  t.ok(out.identity.expiresAt! > now());
  t.ok(Math.abs(out.identity.authTime - (now() - 10)) <= 1);

  const pwdOnly = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const o2 = await auth.authenticate(withBearer(pwdOnly.access));
  t.equal(o2.kind === 'identity' && o2.identity.mfa, false);
});

t.test('not mine: no bearer, other schemes, opaque values, other issuers', async (t) => {
  const { auth, privateKey } = await setup(t);
  t.equal(code(await auth.authenticate(req({}))), 'not-mine');
  t.equal(code(await auth.authenticate(req({ authorization: 'Basic YWxpY2U6eA==' }))), 'not-mine');
  t.equal(code(await auth.authenticate(req({ authorization: 'Token abc' }))), 'not-mine');
  t.equal(code(await auth.authenticate(withBearer('agt_opaque-token-value'))), 'not-mine');
  t.equal(code(await auth.authenticate(withBearer('a.b'))), 'not-mine');
  t.equal(code(await auth.authenticate(withBearer('a.b.c.d'))), 'not-mine');
  const other = await forge(privateKey, { alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' }, { iss: 'https://idp.example', sub: 'x', exp: now() + 60, token_use: 'access' });
  t.equal(code(await auth.authenticate(withBearer(other))), 'not-mine', 'a token of another issuer is left to the next authenticator');
  t.equal(code(await auth.authenticate(req({ authorization: `Bearer ${other} extra` }))), 'not-mine');
});

t.test('refresh tokens, assertions and typ-less tokens are not access tokens (THREATS 11, 52)', async (t) => {
  const { ctx, auth, service, alice, issuer } = await setup(t);
  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const rt = await auth.authenticate(withBearer(pair.refresh));
  t.equal(code(rt), 'invalid_token', 'refresh token as Bearer');
  t.equal(auth.challenge?.(rt.kind === 'reject' ? rt : undefined), 'Bearer realm="authgate", error="invalid_token"');
  t.equal(auth.challenge?.(), 'Bearer realm="authgate"');

  const claims = { iss: issuer, sub: 'alice', jti: 'j1', exp: now() + 60, token_use: 'access' };
  t.equal(code(await auth.authenticate(withBearer(ctx.signing.sign(claims, { typ: 'authgate-assertion+jwt' })))), 'invalid_token', 'assertion typ');
  t.equal(code(await auth.authenticate(withBearer(ctx.signing.sign(claims)))), 'invalid_token', 'typ JWT');
  t.equal(code(await auth.authenticate(withBearer(ctx.signing.sign({ ...claims, token_use: undefined }, { typ: 'at+jwt' })))), 'invalid_token', 'no token_use');
  t.equal(code(await auth.authenticate(withBearer(ctx.signing.sign({ ...claims, token_use: 'refresh' }, { typ: 'at+jwt' })))), 'invalid_token', 'token_use refresh');
  t.equal(code(await auth.authenticate(withBearer(ctx.signing.sign(claims, { typ: 'application/AT+JWT' })))), 'identity', 'typ compared case-insensitively (RFC 7515 4.1.9)');
});

t.test('unsigned and HMAC-confused tokens with our issuer (THREATS 1, 2)', async (t) => {
  const { ctx, auth, issuer } = await setup(t);
  const claims = { iss: issuer, sub: 'admin', exp: now() + 600, token_use: 'access', jti: 'x' };
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    t.equal(code(await auth.authenticate(withBearer(unsigned({ alg, typ: 'at+jwt', kid: 'k1' }, claims)))), 'invalid_token', `alg ${alg}`);
  }
  const withSig = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.c2ln`;
  t.equal(code(await auth.authenticate(withBearer(withSig))), 'invalid_token', 'alg none with a signature');
  const pem = ctx.signing.publicKey('k1')!.pem;
  const jwk = JSON.stringify(ctx.signing.jwks().keys[0]);
  for (const secret of [pem, `\n${pem}`, ` ${pem}`, `x${pem}`, jwk]) {
    t.equal(code(await auth.authenticate(withBearer(forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, claims, secret)))), 'invalid_token');
  }
});

t.test('expired, revoked and tampered gateway tokens', async (t) => {
  const { ctx, auth, service, alice, issuer } = await setup(t);
  const settings = jwtSettings(undefined);
  const expired = ctx.signing.sign({ iss: issuer, sub: 'alice', jti: 'old', iat: now() - 600, exp: now() - 120, token_use: 'access' }, { typ: 'at+jwt' });
  t.equal(code(await auth.authenticate(withBearer(expired))), 'token_expired');

  const pair = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const [h, p, s] = pair.access.split('.') as [string, string, string];
  const body = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const tampered = `${h}.${b64({ ...body, sub: 'admin', groups: ['admin'] })}.${s}`;
  t.equal(code(await auth.authenticate(withBearer(tampered))), 'invalid_token', 'payload changed after signing');
  const badSig = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
  t.equal(code(await auth.authenticate(withBearer(badSig))), 'invalid_token');
  t.equal(code(await auth.authenticate(withBearer(`${h}.${p}.${s}==`))), 'invalid_token', 'trailing bytes after the signature');

  // Revoked by jti (e.g. /oauth/revoke) and by family (/jwt/revoke).
  const single = issueAccessToken(ctx, settings, { user: alice, amr: ['pwd'], authTime: now() });
  t.equal(code(await auth.authenticate(withBearer(single.token))), 'identity');
  await service.denylist.revoke('jti', single.jti, single.exp);
  t.equal(code(await auth.authenticate(withBearer(single.token))), 'token_revoked');

  t.equal(code(await auth.authenticate(withBearer(pair.access))), 'identity');
  await service.revoke(pair.refresh);
  t.equal(code(await auth.authenticate(withBearer(pair.access))), 'token_revoked', 'the family access token dies with the family');
});

t.test('a disabled, removed or changed user stops a family access token at once', async (t) => {
  const { ctx, auth, service, alice } = await setup(t);
  const bob = ctx.users.add('bob');
  const carol = ctx.users.add('carol');
  const a = await service.issueForLogin(alice, { amr: ['pwd'], authTime: now() });
  const b = await service.issueForLogin(bob, { amr: ['pwd'], authTime: now() });
  const c = await service.issueForLogin(carol, { amr: ['pwd'], authTime: now() });
  for (const p of [a, b, c]) t.equal(code(await auth.authenticate(withBearer(p.access))), 'identity');
  ctx.users.update('alice', { disabled: true });
  ctx.users.update('bob', { passwordHash: 'changed' });
  ctx.users.users.delete('carol');
  t.equal(code(await auth.authenticate(withBearer(a.access))), 'token_revoked', 'disabled');
  t.equal(code(await auth.authenticate(withBearer(b.access))), 'token_revoked', 'password changed');
  t.equal(code(await auth.authenticate(withBearer(c.access))), 'token_revoked', 'removed');
});

t.test('key rotation: tokens of the old key still verify, the new key signs', async (t) => {
  const { ctx: old, alice } = await setup(t);
  const oldToken = issueAccessToken(old, jwtSettings(undefined), { user: alice, amr: ['pwd'], authTime: now() }).token;
  const rotated = await testContext(t, {
    dir: old.configDir,
    users: old.users,
    config: { signing: { keys: [ { kid: 'k2', alg: 'ES256', privateKey: { file: './data/k2.pem' } }, { kid: 'k1', alg: 'EdDSA', privateKey: { file: './data/k1.pem' } } ] } },
  });
  const auth = createJwtAuthenticator('local', { type: 'jwt', issuer: 'self' }, rotated);
  t.teardown(() => auth.close?.());
  t.equal(code(await auth.authenticate(withBearer(oldToken))), 'identity', 'old key still verifies');
  const fresh = issueAccessToken(rotated, jwtSettings(undefined), { user: alice, amr: ['pwd'], authTime: now() }).token;
  t.same(JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()), { alg: 'ES256', typ: 'at+jwt', kid: 'k2' });
  t.equal(code(await auth.authenticate(withBearer(fresh))), 'identity');
  // The alg is bound to the key: an ES256 header with the EdDSA key's kid is refused.
  const swapped = await forge(createPrivateKey(readFileSync(join(old.configDir, 'data/k2.pem'), 'utf8')), { alg: 'ES256', typ: 'at+jwt', kid: 'k1' }, JSON.parse(Buffer.from(fresh.split('.')[1]!, 'base64url').toString()) as object);
  t.equal(code(await auth.authenticate(withBearer(swapped))), 'invalid_token');
  t.ok(createPublicKey(rotated.signing.publicKey('k2')!.pem));
});
