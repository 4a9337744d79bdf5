// /jwt/*, /jwks.json and the discovery document through a running gateway, and gateway JWTs on
// a proxied route: accepted, refused (never forwarded: NF), revoked (SPEC 6, THREATS A, G).
import t from 'tap';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { request } from 'undici';
import { startTestEcho, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { forge, forgeHmac, unsigned } from './helpers.js';
import type { EchoServer } from '../../src/demo/echo.js';

let HASH = '';
t.before(async () => {
  HASH = await bcrypt.hash('alice-pw', 4);
});

const users = () => `users:
  alice: { email: alice@example.com, password: "${HASH}", groups: [staff] }
  bob: { password: "${HASH}", mfa: { required: true } }
  carol: { password: "${HASH}", disabled: true }
`;

async function start(t: Parameters<typeof startTestGateway>[0], jwt: Record<string, unknown> = {}): Promise<{ gw: TestGateway; echo: EchoServer }> {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(
    t,
    {
      users: { file: 'users.yaml' },
      login: { lockout: { maxFailures: 3, maxFailuresPerAddress: 100 } },
      jwt,
      authenticators: { 'local-jwt': { type: 'jwt', issuer: 'self' } },
      routes: [{ name: 'api', match: { path: '/api/**' }, upstream: echo.url, auth: ['local-jwt'] }],
    },
    { files: { 'users.yaml': users() } },
  );
  return { gw, echo };
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

async function post(gw: TestGateway, path: string, body: Record<string, unknown> | string, contentType = 'application/json'): Promise<Res> {
  const res = await request(`${gw.url}/.auth${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function api(gw: TestGateway, token: string): Promise<Res> {
  const res = await request(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

t.test('token → API → refresh → reuse → revoked family (simplejwt flow)', async (t) => {
  const { gw, echo } = await start(t, { reuseGrace: 0 });
  const login = await post(gw, '/jwt/token', { username: 'alice', password: 'alice-pw' });
  t.equal(login.status, 200);
  t.equal(login.headers['cache-control'], 'no-store');
  t.same(Object.keys(login.body).sort(), ['access', 'refresh']);
  const { access, refresh } = login.body as { access: string; refresh: string };

  const ok = await api(gw, access);
  t.equal(ok.status, 200);
  const seen = echo.received.at(-1)!;
  t.equal(seen.headers['x-auth-user'], 'alice');
  t.equal(seen.headers['x-auth-method'], 'jwt');
  t.equal(seen.headers['x-auth-groups'], 'staff');

  const rotated = await post(gw, '/jwt/refresh', { refresh });
  t.equal(rotated.status, 200);
  t.equal(rotated.headers['cache-control'], 'no-store');
  const second = rotated.body as { access: string; refresh: string };
  t.equal((await api(gw, second.access)).status, 200);

  const reuse = await post(gw, '/jwt/refresh', { refresh });
  t.equal(reuse.status, 401, 'spent refresh token');
  t.match(reuse.headers['content-type'], /application\/problem\+json/);
  t.equal((await post(gw, '/jwt/refresh', { refresh: second.refresh })).status, 401, 'family revoked');
  const before = echo.received.length;
  const dead = await api(gw, second.access);
  t.equal(dead.status, 401);
  t.match(dead.body, { code: 'token_revoked' });
  t.match(String(dead.headers['www-authenticate']), /Bearer realm="authgate", error="invalid_token"/);
  t.equal(echo.received.length, before, 'not forwarded');
  t.notOk(gw.rawLogs.some((l) => l.includes(refresh) || l.includes(second.access) || l.includes('alice-pw')), 'no token or password in the logs');
});

t.test('form bodies, verify, revoke', async (t) => {
  const { gw } = await start(t);
  const form = await post(gw, '/jwt/token', 'username=alice&password=alice-pw', 'application/x-www-form-urlencoded');
  t.equal(form.status, 200);
  const { access, refresh } = form.body as { access: string; refresh: string };
  t.same((await post(gw, '/jwt/verify', { token: access })).body, {});
  t.equal((await post(gw, '/jwt/verify', `token=${refresh}`, 'application/x-www-form-urlencoded')).status, 200);
  const bad = await post(gw, '/jwt/verify', { token: `${access.slice(0, -4)}AAAA` });
  t.equal(bad.status, 401);
  t.match(bad.body, { code: 'invalid_token' });
  const revoked = await post(gw, '/jwt/revoke', { refresh });
  t.equal(revoked.status, 200);
  t.same(revoked.body, {});
  t.equal((await post(gw, '/jwt/verify', { token: access })).status, 401);
  t.equal((await api(gw, access)).status, 401);
  t.equal((await post(gw, '/jwt/refresh', { refresh })).status, 401);
});

t.test('login failures: 400, 401, 401 mfa_required, 429 locked', async (t) => {
  const { gw } = await start(t);
  t.match(await post(gw, '/jwt/token', { username: 'alice' }), { status: 400, body: { code: 'bad_request' } });
  t.match(await post(gw, '/jwt/token', { username: 'alice', password: ['x'] }), { status: 400 });
  t.match(await post(gw, '/jwt/token', { username: 'nobody', password: 'x' }), { status: 401, body: { code: 'invalid_credentials' } });
  t.match(await post(gw, '/jwt/token', { username: 'carol', password: 'alice-pw' }), { status: 401, body: { code: 'invalid_credentials' } }, 'disabled user');
  t.match(await post(gw, '/jwt/token', { username: 'bob', password: 'alice-pw' }), { status: 401, body: { code: 'mfa_required' } }, 'MFA users need an otp (issue 11)');
  for (let i = 0; i < 3; i++) await post(gw, '/jwt/token', { username: 'alice', password: 'wrong' });
  const locked = await post(gw, '/jwt/token', { username: 'alice', password: 'alice-pw' });
  t.equal(locked.status, 429);
  t.match(locked.body, { code: 'locked' });
  t.ok(Number(locked.headers['retry-after']) > 0);
});

t.test('token-type confusion and credentials in the URL (THREATS 52)', async (t) => {
  const { gw, echo } = await start(t);
  const { access, refresh } = (await post(gw, '/jwt/token', { username: 'alice', password: 'alice-pw' })).body as { access: string; refresh: string };
  const before = echo.received.length;
  t.equal((await api(gw, refresh)).status, 401, 'refresh token as an access token');
  t.equal(echo.received.length, before, 'not forwarded');
  t.match(await post(gw, '/jwt/refresh', { refresh: access }), { status: 400, body: { code: 'bad_request' } }, 'access token to /jwt/refresh');
  const inQuery = await request(`${gw.url}/.auth/jwt/refresh?refresh=${refresh}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(inQuery.statusCode, 400, 'refresh token in the query string');
  await inQuery.body.dump();
  t.equal((await post(gw, '/jwt/refresh', { refresh })).status, 200, 'the token itself is still good');
});

t.test('forged tokens on a proxied route: 401 and never forwarded (THREATS 1, 2, 4)', async (t) => {
  const { gw, echo } = await start(t);
  const jwks = (await (await request(`${gw.url}/.auth/jwks.json`)).body.json()) as { keys: Record<string, unknown>[] };
  const iss = `${gw.url}/.auth`;
  const claims = { iss, sub: 'admin', exp: Math.floor(Date.now() / 1000) + 300, token_use: 'access', groups: ['admin'] };
  const pub = createPublicKey({ key: jwks.keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const attacker = generateKeyPairSync('ed25519');
  const attacks = [
    unsigned({ alg: 'none', typ: 'at+jwt' }, claims),
    unsigned({ alg: 'NONE', typ: 'at+jwt', kid: 'k1' }, claims),
    forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, claims, pub),
    forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, claims, JSON.stringify(jwks.keys[0])),
    await forge(attacker.privateKey, { alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' }, claims),
    await forge(attacker.privateKey, { alg: 'EdDSA', typ: 'at+jwt', jwk: attacker.publicKey.export({ format: 'jwk' }) }, claims),
  ];
  for (const token of attacks) {
    const res = await api(gw, token);
    t.equal(res.status, 401);
  }
  t.equal(echo.received.length, 0, 'the upstream saw none of them');
});

t.test('JWKS and discovery documents', async (t) => {
  const { gw } = await start(t);
  const res = await request(`${gw.url}/.auth/jwks.json`);
  t.equal(res.statusCode, 200);
  const jwks = (await res.body.json()) as { keys: Record<string, unknown>[] };
  t.equal(jwks.keys.length, 1);
  t.match(jwks.keys[0], { kid: 'k1', alg: 'EdDSA', kty: 'OKP', crv: 'Ed25519', use: 'sig' });
  t.notOk('d' in jwks.keys[0]!);

  const meta = await request(`${gw.url}/.auth/.well-known/openid-configuration`);
  t.equal(meta.statusCode, 200);
  const doc = (await meta.body.json()) as Record<string, unknown>;
  const issuer = `${gw.url}/.auth`;
  t.match(doc, {
    issuer,
    jwks_uri: `${issuer}/jwks.json`,
    token_endpoint: `${issuer}/oauth/token`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    grant_types_supported: ['client_credentials'],
    id_token_signing_alg_values_supported: ['EdDSA'],
  });
  t.ok(Array.isArray(doc.response_types_supported), 'RFC 8414: response_types_supported present');

  // A relying party can verify gateway tokens with nothing but the published JWKS.
  const { access } = (await post(gw, '/jwt/token', { username: 'alice', password: 'alice-pw' })).body as { access: string };
  const { payload, protectedHeader } = await jwtVerify(access, createLocalJWKSet(jwks as never), { issuer, typ: 'at+jwt' });
  t.equal(payload.sub, 'alice');
  t.equal(protectedHeader.kid, 'k1');
});
