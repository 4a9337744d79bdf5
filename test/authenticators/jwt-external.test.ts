// The `jwt` authenticator against an external issuer (JWKS over HTTP, OIDC discovery, static PEM
// keys), attacked with every THREATS A case that can be expressed at the authenticator: forged
// headers, key confusion, kid tricks, key-fetch amplification, claim shapes and serialisations.
import t from 'tap';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import type { AuthenticatorConfigOf } from '../../src/config/schema.js';
import { createJwtAuthenticator } from '../../src/pipeline/authenticators/jwt.js';
import { RemoteKeySource } from '../../src/jose/keys.js';
import type { Authenticator, AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';
import { b64, forge, forgeHmac, forgeRs256, json, recordingLogger, startServer, testContext, unsigned, waitFor, type Teardown, type TestServer } from '../jwt/helpers.js';

const now = () => Math.floor(Date.now() / 1000);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });

const jwkOf = (key: KeyObject, extra: Record<string, unknown>) => ({ ...key.export({ format: 'jwk' }), use: 'sig', ...extra });

function req(headers: Record<string, string>): AuthRequest {
  return { method: 'GET', path: '/api/x', query: '', host: 'gw.test', headers, ip: '127.0.0.1', cookies: {}, log: recordingLogger() };
}
const withBearer = (token: string) => req({ authorization: `Bearer ${token}` });
const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

interface Idp {
  server: TestServer;
  issuer: string;
  keys: unknown[];
  /** Serve errors instead of documents. */
  down: boolean;
}

/** An IdP on 127.0.0.1:0 with a discovery document and a JWKS at /keys. */
async function startIdp(t: Teardown, keys: unknown[] = [jwkOf(rsa.publicKey, { kid: 'rsa1', alg: 'RS256' })]): Promise<Idp> {
  const server = await startServer(t);
  const idp: Idp = { server, issuer: server.url, keys, down: false };
  server.handler = (request, res) => {
    if (idp.down) return json(res, { error: 'down' }, 500);
    if (request.url === '/.well-known/openid-configuration') return json(res, { issuer: idp.issuer, jwks_uri: `${server.url}/keys` });
    if (request.url === '/keys') return json(res, { keys: idp.keys });
    json(res, {}, 404);
  };
  return idp;
}

async function authenticator(t: Teardown, cfg: Omit<AuthenticatorConfigOf<'jwt'>, 'type'>): Promise<Authenticator> {
  const ctx = await testContext(t);
  const auth = createJwtAuthenticator('ext', { type: 'jwt', ...cfg }, ctx);
  t.teardown(() => auth.close?.());
  return auth;
}

const claims = (issuer: string, extra: Record<string, unknown> = {}) => ({ iss: issuer, sub: 'u-1', preferred_username: 'alice', aud: 'api', iat: now(), exp: now() + 300, ...extra });
const rs256 = (issuer: string, extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  forge(rsa.privateKey, { alg: 'RS256', kid: 'rsa1', typ: 'JWT', ...header }, claims(issuer, extra));

t.test('discovery → JWKS: a good token gives the mapped identity; keys are fetched once', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer, audience: 'api', claims: { groups: 'realm_access.roles' } });
  const token = await rs256(idp.issuer, { email: 'alice@example.com', realm_access: { roles: ['staff', 'bad,group', 'ev\nil'] }, scope: 'orders:read openid', amr: ['pwd', 'otp'] });
  const out = await auth.authenticate(withBearer(token));
  t.equal(out.kind, 'identity');
  if (out.kind === 'identity') {
    t.match(out.identity, { user: 'alice', email: 'alice@example.com', groups: ['staff'], scopes: ['orders:read', 'openid'], method: 'jwt', mfa: true, amr: ['pwd', 'otp'] });
    t.equal(out.identity.subject, `${idp.issuer}#u-1`);
  }
  for (let i = 0; i < 5; i++) t.equal(code(await auth.authenticate(withBearer(token))), 'identity');
  t.equal(idp.server.hits.get('/.well-known/openid-configuration'), 1);
  t.equal(idp.server.hits.get('/keys'), 1);
  t.equal(await auth.ready?.(), 'ok');
});

t.test('claims mapping: sub fallback, scp, dotted paths, bad usernames (THREATS 91)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer });
  const id = async (extra: Record<string, unknown>) => {
    const o = await auth.authenticate(withBearer(await rs256(idp.issuer, extra)));
    return o.kind === 'identity' ? o.identity : code(o);
  };
  t.match(await id({ preferred_username: undefined, scp: ['a', 'b c'] }), { user: 'u-1', scopes: ['a'], amr: ['jwt'], mfa: false });
  t.match(await id({ scp: 'x y' }), { scopes: ['x', 'y'] });
  t.equal(await id({ preferred_username: 'alice\r\nX-Auth-Groups: admin' }), 'invalid_token');
  t.equal(await id({ preferred_username: '', sub: undefined }), 'invalid_token');
  t.equal(await id({ preferred_username: ['alice'] }), 'invalid_token');
  t.match(await id({ email: 'a@b\r\nX: y' }), { user: 'alice', email: undefined });

  const mapped = await authenticator(t, { issuer: idp.issuer, claims: { username: 'ext.login', groups: '__proto__.x', scopes: 'perm' } });
  const o = await mapped.authenticate(withBearer(await rs256(idp.issuer, { ext: { login: 'bob' }, perm: ['p:1'] })));
  t.match(o.kind === 'identity' ? o.identity : o, { user: 'bob', groups: [], scopes: ['p:1'] });
  const noPath = await mapped.authenticate(withBearer(await rs256(idp.issuer)));
  t.equal(code(noPath), 'invalid_token', 'the configured username claim is missing');
});

t.test('alg none and HS256 signed with the public key in every encoding (THREATS 1, 2)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer, algorithms: ['RS256'] });
  const c = claims(idp.issuer, { preferred_username: 'admin' });
  for (const alg of ['none', 'None', 'NONE']) {
    t.equal(code(await auth.authenticate(withBearer(unsigned({ alg, typ: 'JWT' }, c)))), 'invalid_token', alg);
    t.equal(code(await auth.authenticate(withBearer(unsigned({ alg, kid: 'rsa1' }, c)))), 'invalid_token', `${alg} with kid`);
  }
  const spki = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const jwkJson = JSON.stringify(jwkOf(rsa.publicKey, { kid: 'rsa1', alg: 'RS256' }));
  const variants = { spki, pkcs1, leadingNewline: `\n${spki}`, leadingSpace: ` ${pkcs1}`, prefixed: `x${spki}`, jwkJson };
  for (const [name, secret] of Object.entries(variants)) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = forgeHmac({ alg, kid: 'rsa1', typ: 'JWT' }, c, secret, `sha${alg.slice(2)}`);
      t.equal(code(await auth.authenticate(withBearer(token))), 'invalid_token', `${alg} keyed with ${name}`);
    }
  }
  // Even with HS256 "allowed" it could not be: the schema only knows asymmetric algorithms, and
  // a key's algorithms come from its type.
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer)))), 'identity');
});

t.test('an algorithm outside the allowlist or not bound to the key, signed by a legit key (THREATS 3)', async (t) => {
  const idp = await startIdp(t, [jwkOf(rsa.publicKey, { kid: 'rsa1', alg: 'RS256' }), jwkOf(ec.publicKey, { kid: 'ec1', alg: 'ES256' })]);
  const pinned = await authenticator(t, { issuer: idp.issuer, algorithms: ['RS256'] });
  const c = claims(idp.issuer);
  for (const alg of ['PS256', 'RS512']) {
    t.equal(code(await pinned.authenticate(withBearer(await forge(rsa.privateKey, { alg, kid: 'rsa1' }, c)))), 'invalid_token', alg);
  }
  t.equal(code(await pinned.authenticate(withBearer(await forge(ec.privateKey, { alg: 'ES256', kid: 'rsa1' }, c)))), 'invalid_token', 'ES256 with the RSA kid');
  t.equal(code(await pinned.authenticate(withBearer(await forge(ec.privateKey, { alg: 'ES256', kid: 'ec1' }, c)))), 'invalid_token', 'ES256 not allowed');

  // Several algorithms allowed: each key still only verifies its own declared one.
  const wide = await authenticator(t, { issuer: idp.issuer, algorithms: ['RS256', 'PS256', 'ES256'] });
  t.equal(code(await wide.authenticate(withBearer(await forge(rsa.privateKey, { alg: 'PS256', kid: 'rsa1' }, c)))), 'invalid_token', 'PS256 with an RS256 key');
  t.equal(code(await wide.authenticate(withBearer(await forge(ec.privateKey, { alg: 'ES256', kid: 'rsa1' }, c)))), 'invalid_token', 'ES256 with the RSA kid');
  t.equal(code(await wide.authenticate(withBearer(await forge(ec.privateKey, { alg: 'ES256', kid: 'ec1' }, c)))), 'identity');
  t.equal(code(await wide.authenticate(withBearer(await forge(rsa.privateKey, { alg: 'RS256', kid: 'rsa1' }, c)))), 'identity');
});

t.test('header key material is never used or fetched (THREATS 4, 5)', async (t) => {
  const idp = await startIdp(t);
  const canary = await startServer(t, (_q, res) => json(res, { keys: [jwkOf(attacker.publicKey, { kid: 'evil', alg: 'RS256' })] }));
  const auth = await authenticator(t, { issuer: idp.issuer, jwksRefreshInterval: 0 });
  await waitFor(() => idp.server.hits.get('/keys') === 1);
  const c = claims(idp.issuer, { preferred_username: 'admin' });
  const headers = [
    { jwk: jwkOf(attacker.publicKey, { alg: 'RS256' }) },
    { jwk: jwkOf(attacker.publicKey, { alg: 'RS256', kid: 'rsa1' }), kid: 'rsa1' },
    { jku: `${canary.url}/jwks.json`, kid: 'evil' },
    { jku: `${canary.url}/jwks.json`, kid: 'rsa1' },
    { x5u: `${canary.url}/latest/meta-data/`, kid: 'evil' },
    { x5u: 'http://169.254.169.254/latest/meta-data/' },
    { x5c: [attacker.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')] },
  ];
  for (const h of headers) {
    const token = await forge(attacker.privateKey, { alg: 'RS256', ...h }, c);
    t.equal(code(await auth.authenticate(withBearer(token))), 'invalid_token', Object.keys(h).join('+'));
  }
  t.equal(canary.total(), 0, 'the attacker host received no request');
});

t.test('kid injection (THREATS 6)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer, jwksRefreshInterval: '1h' });
  const c = claims(idp.issuer, { preferred_username: 'admin' });
  t.equal(code(await auth.authenticate(withBearer(forgeHmac({ alg: 'HS256', kid: '../../../../dev/null' }, c, '')))), 'invalid_token');
  for (const kid of ["x' UNION SELECT 'secret'--", '../../../../dev/null', 'k'.repeat(10_000), ['rsa1'], { kid: 'rsa1' }, '', 'a\u0000b', 'rsa1\n']) {
    const token = await forge(attacker.privateKey, { alg: 'RS256', kid }, c);
    t.equal(code(await auth.authenticate(withBearer(token))), 'invalid_token', `kid ${JSON.stringify(kid).slice(0, 40)}`);
  }
  t.equal(idp.server.hits.get('/keys'), 1, 'no refetch inside the interval');
});

t.test('a flood of unknown kids: at most one JWKS fetch per interval, good tokens keep working (THREATS 7)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer, jwksUri: `${idp.issuer}/keys`, jwksRefreshInterval: '3s' });
  const good = await rs256(idp.issuer);
  t.equal(code(await auth.authenticate(withBearer(good))), 'identity');
  const before = idp.server.hits.get('/keys') ?? 0;
  t.equal(before, 1);
  t.equal(idp.server.hits.get('/.well-known/openid-configuration'), undefined, 'jwksUri configured: no discovery');

  const junk = await Promise.all(Array.from({ length: 200 }, () => forge(attacker.privateKey, { alg: 'RS256', kid: randomUUID() }, claims(idp.issuer))));
  const started = Date.now();
  const outcomes = await Promise.all(junk.flatMap((j, i) => [auth.authenticate(withBearer(j)), ...(i % 10 === 0 ? [auth.authenticate(withBearer(good))] : [])]));
  const elapsed = Date.now() - started;
  const goodOutcomes = outcomes.filter((o) => o.kind === 'identity').length;
  t.equal(goodOutcomes, 20, 'every interleaved good token accepted');
  t.equal(outcomes.filter((o) => code(o) === 'invalid_token').length, 200);
  const fetches = (idp.server.hits.get('/keys') ?? 0) - before;
  t.ok(fetches <= Math.ceil(elapsed / 3000), `fetches during the flood: ${fetches} in ${elapsed} ms`);

  // After the interval, one unknown kid may refetch once; the keys stay.
  await new Promise((r) => setTimeout(r, 3100));
  const burst = await Promise.all(junk.slice(0, 50).map((j) => auth.authenticate(withBearer(j))));
  t.ok(burst.every((o) => code(o) === 'invalid_token'));
  t.equal((idp.server.hits.get('/keys') ?? 0) - before - fetches, 1, 'exactly one refetch for the whole burst');
  t.equal(code(await auth.authenticate(withBearer(good))), 'identity');
});

t.test('an empty key set does not bypass the cooldown', async (t) => {
  const idp = await startIdp(t, []);
  const auth = await authenticator(t, { issuer: idp.issuer, jwksUri: `${idp.issuer}/keys`, jwksRefreshInterval: '1h' });
  await waitFor(() => idp.server.hits.get('/keys') === 1);
  for (let i = 0; i < 20; i++) t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, {}, { kid: `k${i}` })))), 'invalid_token');
  t.equal(idp.server.hits.get('/keys'), 1);
});

t.test('key rotation at the IdP: a new kid is picked up, the stale set is kept while the IdP is down', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer, jwksRefreshInterval: '1s' });
  const good = await rs256(idp.issuer);
  t.equal(code(await auth.authenticate(withBearer(good))), 'identity');

  idp.keys = [jwkOf(rsa.publicKey, { kid: 'rsa1', alg: 'RS256' }), jwkOf(rsa2.publicKey, { kid: 'rsa2', alg: 'RS256' })];
  const rotated = await forge(rsa2.privateKey, { alg: 'RS256', kid: 'rsa2' }, claims(idp.issuer));
  t.ok(await waitFor(async () => code(await auth.authenticate(withBearer(rotated))) === 'identity', 5000), 'new kid accepted after the interval');

  idp.down = true;
  await new Promise((r) => setTimeout(r, 1100));
  const unknown = await forge(attacker.privateKey, { alg: 'RS256', kid: 'nope' }, claims(idp.issuer));
  t.equal(code(await auth.authenticate(withBearer(unknown))), 'invalid_token', 'unknown kid while down: refused, not 503');
  t.equal(code(await auth.authenticate(withBearer(good))), 'identity', 'known keys still work while the IdP is down');
  t.equal(await auth.ready?.(), 'degraded');
  idp.down = false;
});

t.test('no key ever fetched: 503-class refusal, recovery without restart (THREATS 20)', async (t) => {
  const idp = await startIdp(t);
  idp.down = true;
  const auth = await authenticator(t, { issuer: idp.issuer, jwksRefreshInterval: '1s' });
  const good = await rs256(idp.issuer);
  t.equal(code(await auth.authenticate(withBearer(good))), 'service_unavailable');
  await t.rejects(auth.ready!());
  idp.down = false;
  t.ok(await waitFor(async () => code(await auth.authenticate(withBearer(good))) === 'identity', 5000));
  t.equal(await auth.ready?.(), 'ok');

  // A discovery document naming another issuer is refused (OIDC Discovery 4.3).
  const liar = await startIdp(t);
  liar.issuer = 'https://someone-else.example';
  const auth2 = await authenticator(t, { issuer: liar.server.url });
  t.equal(code(await auth2.authenticate(withBearer(await rs256(liar.server.url)))), 'service_unavailable');
  t.equal(liar.server.hits.get('/keys'), undefined);
});

t.test('key fetches time out', async (t) => {
  const hang = await startServer(t, () => undefined);
  const source = new RemoteKeySource({ issuer: hang.url, jwksUri: `${hang.url}/keys`, algorithms: ['RS256'], refreshIntervalMs: 60_000, timeoutMs: 200, log: recordingLogger() });
  t.teardown(() => source.close());
  const started = Date.now();
  t.equal(await source.candidates('x', 'RS256'), 'unavailable');
  t.ok(Date.now() - started < 2000, 'gave up quickly');
});

t.test('exp is required and time claims are strict (THREATS 8, 9)', async (t) => {
  const issuer = 'https://ci.example';
  const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const auth = await authenticator(t, { issuer, publicKeys: [pem], algorithms: ['RS256'], clockTolerance: '30s' });
  const sign = (payload: object | string) => forge(rsa.privateKey, { alg: 'RS256' }, payload);
  const base = { iss: issuer, sub: 'ci' };
  t.equal(code(await auth.authenticate(withBearer(await sign({ ...base, exp: now() + 60 })))), 'identity');
  t.equal(code(await auth.authenticate(withBearer(await sign(base)))), 'invalid_token', 'no exp');
  t.equal(code(await auth.authenticate(withBearer(await sign({ ...base, exp: now() - 31 })))), 'token_expired', 'expired beyond the skew');
  t.equal(code(await auth.authenticate(withBearer(await sign({ ...base, exp: now() - 28 })))), 'identity', 'inside the skew');
  t.equal(code(await auth.authenticate(withBearer(await sign({ ...base, exp: now() + 60, nbf: now() + 120 })))), 'invalid_token', 'not yet valid');
  for (const exp of ['"9999999999"', '1e309', '-1', 'null', `${now() + 60}.5`, 'true', '[9999999999]', '{}']) {
    const raw = `{"iss":"${issuer}","sub":"ci","exp":${exp}}`;
    t.not(code(await auth.authenticate(withBearer(await sign(raw)))), 'identity', `exp ${exp}`);
  }
  t.equal(code(await auth.authenticate(withBearer(await sign(`{"iss":"${issuer}","sub":"ci","exp":${now() + 60},"nbf":1e309}`)))), 'invalid_token', 'nbf Infinity');
  t.equal(code(await auth.authenticate(withBearer(await sign({ ...base, exp: now() + 60, iat: 'yesterday' })))), 'invalid_token', 'iat string');

  const capped = await authenticator(t, { issuer, publicKeys: [pem], algorithms: ['RS256'], clockTolerance: '1h' });
  t.equal(code(await capped.authenticate(withBearer(await sign({ ...base, exp: now() - 90 })))), 'token_expired', 'skew capped at 60 s');

  const maxAge = await authenticator(t, { issuer, publicKeys: [pem], algorithms: ['RS256'], maxAge: '5m' });
  t.equal(code(await maxAge.authenticate(withBearer(await sign({ ...base, exp: now() + 60 })))), 'invalid_token', 'maxAge needs iat');
  t.equal(code(await maxAge.authenticate(withBearer(await sign({ ...base, exp: now() + 60, iat: now() - 3600 })))), 'token_expired', 'too old');
  t.equal(code(await maxAge.authenticate(withBearer(await sign({ ...base, exp: now() + 60, iat: now() - 10 })))), 'identity');
});

t.test('wrong iss / aud / sub shapes and other issuers (THREATS 10)', async (t) => {
  const idp = await startIdp(t);
  const other = await startIdp(t, [jwkOf(rsa2.publicKey, { kid: 'rsa1', alg: 'RS256' })]);
  const auth = await authenticator(t, { issuer: idp.issuer, audience: 'api' });
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { aud: 'other-client' })))), 'invalid_token', 'aud of another client');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { aud: undefined })))), 'invalid_token', 'no aud');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { aud: ['other', 'api'] })))), 'identity', 'aud array containing ours');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { aud: [{ x: 1 }] })))), 'invalid_token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { iss: [idp.issuer, 'x'] })))), 'not-mine', 'iss array is never ours');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { sub: { id: 'admin' } })))), 'invalid_token', 'sub object');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { jti: 5 })))), 'invalid_token', 'jti number');
  t.equal(code(await auth.authenticate(withBearer(await rs256(other.issuer)))), 'not-mine', 'another issuer: left to its own authenticator');
  // Signed by the other trusted issuer's key, claiming our issuer.
  const cross = await forge(rsa2.privateKey, { alg: 'RS256', kid: 'rsa1' }, claims(idp.issuer));
  t.equal(code(await auth.authenticate(withBearer(cross))), 'invalid_token');
});

t.test('token-type confusion (THREATS 11)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer });
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, {}, { typ: 'refresh+jwt' })))), 'invalid_token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, {}, { typ: 'logout+jwt' })))), 'invalid_token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { token_use: 'id' })))), 'invalid_token', 'Cognito ID token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { typ: 'ID' })))), 'invalid_token', 'Keycloak ID token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { typ: 'Refresh' })))), 'invalid_token', 'Keycloak refresh token');
  t.equal(code(await auth.authenticate(withBearer(await rs256(idp.issuer, { typ: 'Bearer' })))), 'identity', 'Keycloak access token');
  const typed = await authenticator(t, { issuer: idp.issuer, types: ['at+jwt'] });
  t.equal(code(await typed.authenticate(withBearer(await rs256(idp.issuer, {}, { typ: 'JWT' })))), 'invalid_token');
  t.equal(code(await typed.authenticate(withBearer(await rs256(idp.issuer, {}, { typ: undefined })))), 'invalid_token');
  t.equal(code(await typed.authenticate(withBearer(await rs256(idp.issuer, {}, { typ: 'application/at+jwt' })))), 'identity');
});

t.test('malformed serialisations and JWE (THREATS 12)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer });
  const good = await rs256(idp.issuer);
  const [h, p, s] = good.split('.') as [string, string, string];
  t.equal(code(await auth.authenticate(withBearer(`${h}.${p}`))), 'not-mine', '2 segments');
  t.equal(code(await auth.authenticate(withBearer(`${h}.${p}.${s}.${s}`))), 'not-mine', '4 segments');
  t.equal(code(await auth.authenticate(withBearer(`${b64({ enc: 'A128GCM' })}.a.b.c.d`))), 'invalid_token', 'JWE without alg');
  t.equal(code(await auth.authenticate(withBearer(`${b64({ alg: 'dir', enc: 'A128GCM' })}..iv.ct.tag`))), 'invalid_token', 'JWE');
  t.equal(code(await auth.authenticate(withBearer(`${h}.${p}.${s.slice(0, -3)}$$$`))), 'invalid_token', 'non-base64url signature');
  t.equal(code(await auth.authenticate(withBearer(`${h}=.${p}.${s}`))), 'invalid_token', 'padding in the header');
  t.equal(code(await auth.authenticate(withBearer(`${h}.${p}.`))), 'invalid_token', 'signature stripped');
  t.equal(code(await auth.authenticate(withBearer(`${b64('"RS256"')}.${p}.${s}`))), 'invalid_token', 'header is a string');
  t.equal(code(await auth.authenticate(withBearer(`${b64('[1]')}.${p}.${s}`))), 'invalid_token', 'header is an array');
  t.equal(code(await auth.authenticate(withBearer(`${b64('{"alg":"RS256","kid":"rsa1","alg":"none"}')}.${p}.${s}`))), 'invalid_token', 'duplicate alg');
  t.equal(code(await auth.authenticate(withBearer(`${b64('{"alg":"RS256","kid":"rsa1"')}.${p}.${s}`))), 'invalid_token', 'truncated header JSON');
  t.equal(code(await auth.authenticate(withBearer(forgeRs256(rsa.privateKey, { alg: 'RS256', kid: 'rsa1', crit: ['exp'] }, claims(idp.issuer))))), 'invalid_token', 'crit');
  t.equal(code(await auth.authenticate(withBearer(forgeRs256(rsa.privateKey, { alg: 'RS256', kid: 'rsa1', b64: false, crit: ['b64'] }, claims(idp.issuer))))), 'invalid_token', 'b64=false');
  t.equal(code(await auth.authenticate(withBearer(forgeRs256(rsa.privateKey, { alg: 'RS256', kid: 'rsa1' }, claims(idp.issuer))))), 'identity', 'the same without crit');
  t.equal(code(await auth.authenticate(withBearer(good))), 'identity', 'the original still verifies');
});

t.test('oversized and expensive tokens are refused quickly (THREATS 13)', async (t) => {
  const idp = await startIdp(t);
  const auth = await authenticator(t, { issuer: idp.issuer });
  await auth.authenticate(withBearer(await rs256(idp.issuer)));
  const big = await rs256(idp.issuer, { pad: 'x'.repeat(64 * 1024) });
  const nested = `${b64({ alg: 'RS256', kid: 'rsa1' })}.${b64(`{"iss":"${idp.issuer}","x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`)}.c2ln`;
  const pbes2 = `${b64({ alg: 'PBES2-HS256+A128KW', enc: 'A128GCM', p2c: 2147483647, p2s: 'AAAA' })}.a.b.c.d`;
  const nestedSmall = `${b64({ alg: 'RS256', kid: 'rsa1' })}.${b64(`{"iss":"${idp.issuer}","exp":${now() + 60},"x":${'['.repeat(5_000)}${']'.repeat(5_000)}}`)}.c2ln`;
  t.ok(nestedSmall.length < 16 * 1024);
  for (const [name, token] of Object.entries({ big, nested, nestedSmall, pbes2 })) {
    const started = performance.now();
    const out = await auth.authenticate(withBearer(token));
    const ms = performance.now() - started;
    t.equal(code(out), 'invalid_token', name);
    t.ok(ms < 50, `${name} refused in ${ms.toFixed(1)} ms`);
  }
  t.equal(code(await auth.authenticate(withBearer('x'.repeat(70_000)))), 'not-mine', 'a huge opaque value is not a JWT');
});

t.test('static PEM keys: unusable keys are a configuration error', async (t) => {
  const ctx = await testContext(t);
  t.throws(() => createJwtAuthenticator('ci', { type: 'jwt', issuer: 'https://ci', publicKeys: ['not a key'] }, ctx), /not a PEM public key/);
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  t.throws(() => createJwtAuthenticator('ci', { type: 'jwt', issuer: 'https://ci', publicKeys: [ecPem], algorithms: ['RS256'] }, ctx), /fits none of the algorithms/);
  t.throws(() => createJwtAuthenticator('ci', { type: 'jwt', issuer: 'https://ci', publicKeys: [{ file: 'x.pem' }] }, ctx), /not loaded/);
});
