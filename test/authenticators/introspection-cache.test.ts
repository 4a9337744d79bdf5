// The introspection authenticator against a stub authorization server: strict `active` (THREATS
// 17), cache keys (18), cache lifetime bounded by exp (19), errors never cached (20), call
// coalescing and the outbound concurrency bound (22), and what is not ours to introspect.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { MemoryStore } from '../../src/store/memory.js';
import { createIntrospectionAuthenticator, interpretIntrospection, MAX_TOKEN_LENGTH } from '../../src/pipeline/authenticators/introspection.js';
import { ApiTokenService } from '../../src/tokens/api-tokens.js';
import type { AuthenticatorConfigOf } from '../../src/config/schema.js';
import type { AuthOutcome } from '../../src/pipeline/types.js';
import { authRequest, makeContext, waitFor } from '../tokens/_fixtures.js';

type Handler = (res: ServerResponse, req: IncomingMessage) => void;

interface Stub {
  url: string;
  calls: Map<string, number>;
  requests: { path: string; authorization: string | undefined; contentType: string | undefined; body: URLSearchParams }[];
  on: (token: string, handler: Handler) => void;
}

const json = (body: unknown, status = 200): Handler => (res) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function startStub(t: Test): Promise<Stub> {
  const handlers = new Map<string, Handler>();
  const calls = new Map<string, number>();
  const requests: Stub['requests'] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const token = body.get('token') ?? '';
      const path = req.url ?? '/';
      requests.push({ path, authorization: req.headers.authorization, contentType: req.headers['content-type'], body });
      const key = `${path} ${token}`;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      const handler = handlers.get(key) ?? handlers.get(`* ${token}`) ?? json({ active: false });
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      handler(res, req);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    requests,
    on: (token, handler) => void handlers.set(token.includes(' ') ? token : `* ${token}`, handler),
  };
}

const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);
const bearer = (token: string) => authRequest({ authorization: `Bearer ${token}` });
const nowS = (): number => Math.floor(Date.now() / 1000);

function cfg(endpoint: string, extra: Partial<AuthenticatorConfigOf<'introspection'>> = {}): AuthenticatorConfigOf<'introspection'> {
  return { type: 'introspection', endpoint, clientId: 'gw client', clientSecret: 's3cret:&=+', timeout: '500ms', ...extra };
}

t.test('client authentication and request format (RFC 7662 2.1, RFC 6749 2.3.1)', async (t) => {
  const stub = await startStub(t);
  stub.on('tok1', json({ active: true, username: 'alice', scope: 'a b' }));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/introspect`), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  t.equal(code(await auth.authenticate(bearer('tok1'))), 'identity');
  const [r] = stub.requests;
  t.equal(r?.path, '/introspect');
  t.equal(r?.contentType, 'application/x-www-form-urlencoded');
  t.equal(r?.body.get('token'), 'tok1');
  t.equal(r?.body.get('token_type_hint'), 'access_token');
  const decoded = Buffer.from(r!.authorization!.replace(/^Basic /, ''), 'base64').toString('utf8');
  t.equal(decoded, 'gw+client:s3cret%3A%26%3D%2B', 'id and secret are form-urlencoded before base64');
});

t.test('THREATS 17: only the boolean true is active; AS failures are 503 and not cached', async (t) => {
  const stub = await startStub(t);
  stub.on('str-false', json({ active: 'false', username: 'admin' }));
  stub.on('str-true', json({ active: 'true', username: 'admin' }));
  stub.on('one', json({ active: 1, username: 'admin' }));
  stub.on('empty', json({}));
  stub.on('array', json([{ active: true, username: 'admin' }]));
  stub.on('null', json(null));
  stub.on('s500', json({ active: true, username: 'admin' }, 500));
  stub.on('s401', json({ active: true, username: 'admin' }, 401));
  stub.on('html', (res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>{"active":true}</body></html>');
  });
  stub.on('huge', (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ active: true, username: 'admin', pad: 'x'.repeat(100_000) }));
  });
  stub.on('hang', () => undefined);
  stub.on('slow-body', (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"active":');
  });
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`, { timeout: '300ms' }), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  for (const tok of ['str-false', 'str-true', 'one', 'empty', 'array', 'null']) {
    t.equal(code(await auth.authenticate(bearer(tok))), 'invalid_token', tok);
  }
  for (const tok of ['s500', 's401', 'html', 'huge', 'hang', 'slow-body']) {
    const started = Date.now();
    const out = await auth.authenticate(bearer(tok));
    t.equal(code(out), 'service_unavailable', tok);
    t.ok(Date.now() - started < 2000, `${tok} answered within the timeout`);
    if (out.kind === 'reject') t.notMatch(out.detail ?? '', /admin|active|500|html/);
  }
  // Errors are not cached: each retry asks the AS again.
  await auth.authenticate(bearer('s500'));
  t.equal(stub.calls.get('/i s500'), 2);
  // Recovery: the same token works as soon as the AS answers (THREATS 20).
  stub.on('s500', json({ active: true, username: 'alice' }));
  t.equal(code(await auth.authenticate(bearer('s500'))), 'identity');
});

t.test('identity from the introspection response', async (t) => {
  const stub = await startStub(t);
  const exp = nowS() + 600;
  stub.on('full', json({ active: true, username: 'alice', sub: 'u-1', client_id: 'app', scope: 'orders:read  orders:write', exp, iat: 1000, jti: 'j1' }));
  stub.on('sub', json({ active: true, sub: 'u-2', client_id: 'app' }));
  stub.on('client', json({ active: true, client_id: 'svc', scope: 'x' }));
  stub.on('nobody', json({ active: true, scope: 'x' }));
  stub.on('expired', json({ active: true, username: 'alice', exp: nowS() - 5 }));
  stub.on('future', json({ active: true, username: 'alice', nbf: nowS() + 600 }));
  stub.on('badexp', json({ active: true, username: 'alice', exp: '9999999999' }));
  stub.on('refresh', json({ active: true, username: 'alice', token_type: 'refresh_token' }));
  stub.on('badscope', json({ active: true, username: 'alice', scope: ['admin'] }));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  const full = await auth.authenticate(bearer('full'));
  t.same(full, {
    kind: 'identity',
    identity: { user: 'alice', groups: [], scopes: ['orders:read', 'orders:write'], method: 'introspection', authenticator: 'as', mfa: false, amr: ['token'], authTime: 1000, subject: 'u-1', tokenId: 'j1', expiresAt: exp },
  });
  const sub = await auth.authenticate(bearer('sub'));
  t.equal(sub.kind === 'identity' && sub.identity.user, 'u-2', 'sub when there is no username');
  const client = await auth.authenticate(bearer('client'));
  t.equal(client.kind === 'identity' && client.identity.user, 'svc', 'client_id last');
  t.equal(code(await auth.authenticate(bearer('nobody'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('expired'))), 'token_expired');
  t.equal(code(await auth.authenticate(bearer('future'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('badexp'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('refresh'))), 'invalid_token', 'refresh tokens are no access tokens');
  t.equal(code(await auth.authenticate(bearer('badscope'))), 'invalid_token');
  t.equal(auth.challenge?.(), 'Bearer realm="authgate"');
  t.equal(auth.challenge?.({ kind: 'reject', code: 'invalid_token' }), 'Bearer realm="authgate", error="invalid_token"');
  t.equal(auth.challenge?.({ kind: 'reject', code: 'service_unavailable' }), 'Bearer realm="authgate"');
});

t.test('audience', async (t) => {
  const stub = await startStub(t);
  stub.on('none', json({ active: true, username: 'alice' }));
  stub.on('other', json({ active: true, username: 'alice', aud: 'https://other.example' }));
  stub.on('list', json({ active: true, username: 'alice', aud: ['https://other.example', 'https://api.example'] }));
  stub.on('exact', json({ active: true, username: 'alice', aud: 'https://api.example' }));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`, { audience: 'https://api.example' }), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  t.equal(code(await auth.authenticate(bearer('none'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('other'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('list'))), 'identity');
  t.equal(code(await auth.authenticate(bearer('exact'))), 'identity');
});

t.test('what is not ours: gateway tokens and JWTs of configured issuers are never sent to the AS; junk is refused without a call', async (t) => {
  const stub = await startStub(t);
  const store = new MemoryStore();
  const ctx = makeContext(store, {
    config: {
      authenticators: {
        partner: { type: 'jwt', issuer: 'https://partner.example' },
        as: { type: 'introspection', endpoint: `${stub.url}/i`, clientId: 'gw', clientSecret: 'x' },
      },
    },
  });
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`), ctx);
  const tokens = new ApiTokenService({ store, config: {} });
  t.teardown(async () => {
    tokens.close();
    await auth.close?.();
    await store.close();
  });
  const { token } = await tokens.createToken({ user: 'alice', name: 'x' });
  const jws = (payload: object): string =>
    `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;
  t.equal(code(await auth.authenticate(bearer(token))), 'not-mine', 'a gateway API token');
  t.equal(code(await auth.authenticate(bearer(jws({ iss: 'http://127.0.0.1:8080/.auth', sub: 'x' })))), 'not-mine', "the gateway's own JWT");
  t.equal(code(await auth.authenticate(bearer(jws({ iss: 'https://partner.example', sub: 'x' })))), 'not-mine', "a configured jwt authenticator's issuer");
  t.equal(code(await auth.authenticate(authRequest({ authorization: `Token ${token}` }))), 'not-mine');
  t.equal(code(await auth.authenticate(authRequest({ authorization: 'Basic YTpi' }))), 'not-mine');
  t.equal(code(await auth.authenticate(authRequest({}))), 'not-mine');
  t.equal(stub.requests.length, 0, 'no call for any of them');

  t.equal(code(await auth.authenticate(bearer('x'.repeat(MAX_TOKEN_LENGTH + 1)))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('a b'))), 'invalid_token');
  t.equal(code(await auth.authenticate(bearer('tok\u0000'))), 'invalid_token');
  t.equal(code(await auth.authenticate(authRequest({ authorization: 'Bearer ' }))), 'invalid_token');
  t.equal(stub.requests.length, 0, 'oversized and malformed tokens are refused without a call');

  t.equal(code(await auth.authenticate(bearer(jws({ iss: 'https://unknown.example', sub: 'x' })))), 'invalid_token', 'a JWS of an unknown issuer is introspected');
  t.equal(stub.requests.length, 1);
});

t.test('cache: positive and negative verdicts, concurrent lookups coalesced', async (t) => {
  const stub = await startStub(t);
  stub.on('good', json({ active: true, username: 'alice' }));
  let releaseSlow: () => void = () => undefined;
  const gate = new Promise<void>((r) => (releaseSlow = r));
  stub.on('slow', (res) => void gate.then(() => json({ active: true, username: 'bob' })(res, undefined as never)));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`, { cacheTtl: '5m' }), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  for (let i = 0; i < 5; i++) t.equal(code(await auth.authenticate(bearer('good'))), 'identity');
  t.equal(stub.calls.get('/i good'), 1, 'active verdict cached');
  for (let i = 0; i < 5; i++) t.equal(code(await auth.authenticate(bearer('bad'))), 'invalid_token');
  t.equal(stub.calls.get('/i bad'), 1, 'inactive verdict cached briefly');

  const all = Promise.all(Array.from({ length: 20 }, () => auth.authenticate(bearer('slow'))));
  t.ok(await waitFor(() => stub.calls.get('/i slow') === 1));
  releaseSlow();
  const outs = await all;
  t.ok(outs.every((o) => o.kind === 'identity' && o.identity.user === 'bob'));
  t.equal(stub.calls.get('/i slow'), 1, 'twenty concurrent lookups, one call');
});

t.test('THREATS 18: the cache key includes the authenticator and its endpoint', async (t) => {
  const stub = await startStub(t);
  stub.on('/b shared', json({ active: true, username: 'partner-user', scope: 'foo' }));
  stub.on('/a shared', json({ active: false }));
  const store = new MemoryStore();
  const ctx = makeContext(store);
  const atB = createIntrospectionAuthenticator('idp-b', cfg(`${stub.url}/b`), ctx);
  const atA = createIntrospectionAuthenticator('idp-a', cfg(`${stub.url}/a`), ctx);
  const atBAgain = createIntrospectionAuthenticator('idp-b2', cfg(`${stub.url}/b`), ctx);
  t.teardown(async () => {
    await Promise.all([atA.close?.(), atB.close?.(), atBAgain.close?.()]);
    await store.close();
  });
  t.equal(code(await atB.authenticate(bearer('shared'))), 'identity', 'valid at B (primes its cache)');
  t.equal(code(await atA.authenticate(bearer('shared'))), 'invalid_token', 'A asks its own AS');
  t.equal(stub.calls.get('/a shared'), 1);
  t.equal(code(await atBAgain.authenticate(bearer('shared'))), 'identity');
  t.equal(stub.calls.get('/b shared'), 2, 'another authenticator on the same endpoint keeps its own entries');
});

t.test('THREATS 19: a cached verdict never outlives exp; revocation at the AS holds within cacheTtl', async (t) => {
  const stub = await startStub(t);
  const exp = nowS() + 2;
  stub.on('short', json({ active: true, username: 'alice', exp }));
  stub.on('revocable', json({ active: true, username: 'alice' }));
  const store = new MemoryStore();
  const ctx = makeContext(store);
  const longCache = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`, { cacheTtl: '300s' }), ctx);
  const shortCache = createIntrospectionAuthenticator('as2', cfg(`${stub.url}/i`, { cacheTtl: '1s' }), ctx);
  t.teardown(async () => {
    await longCache.close?.();
    await shortCache.close?.();
    await store.close();
  });
  t.equal(code(await longCache.authenticate(bearer('short'))), 'identity');
  t.ok(await waitFor(() => Date.now() >= exp * 1000, 5000, 50));
  t.equal(code(await longCache.authenticate(bearer('short'))), 'token_expired', 'rejected once exp has passed despite a 300 s cacheTtl');

  t.equal(code(await shortCache.authenticate(bearer('revocable'))), 'identity');
  stub.on('revocable', json({ active: false }));
  const revokedAt = Date.now();
  t.ok(await waitFor(async () => code(await shortCache.authenticate(bearer('revocable'))) === 'invalid_token', 3000, 50));
  t.ok(Date.now() - revokedAt < 2500, 'within cacheTtl (1 s) plus scheduling');
});

t.test('THREATS 22: outbound calls are bounded; a flood gets 503 without reaching the AS', async (t) => {
  const stub = await startStub(t);
  const held: ServerResponse[] = [];
  stub.on('slow1', (res) => void held.push(res));
  stub.on('slow2', (res) => void held.push(res));
  stub.on('good', json({ active: true, username: 'alice' }));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`, { timeout: '5s' }), makeContext(store), { maxInFlight: 2 });
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  t.equal(code(await auth.authenticate(bearer('good'))), 'identity');
  const p1 = auth.authenticate(bearer('slow1'));
  const p2 = auth.authenticate(bearer('slow2'));
  t.ok(await waitFor(() => held.length === 2));
  const before = stub.requests.length;
  for (let i = 0; i < 50; i++) t.equal(code(await auth.authenticate(bearer(`flood${i}`))), 'service_unavailable');
  t.equal(stub.requests.length, before, 'the flood never reached the AS');
  t.equal(code(await auth.authenticate(bearer('good'))), 'identity', 'cached tokens keep working during the flood');
  for (const res of held) json({ active: true, username: 'x' })(res, undefined as never);
  t.equal(code(await p1), 'identity');
  t.equal(code(await p2), 'identity');
  t.equal(code(await auth.authenticate(bearer('flood0'))), 'invalid_token', 'capacity is back');
});

t.test('no token or secret in log lines', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'trace' }, sink) as unknown as FastifyBaseLogger;
  const stub = await startStub(t);
  stub.on('secret-token-500', json({ error: 'boom' }, 500));
  const store = new MemoryStore();
  const auth = createIntrospectionAuthenticator('as', cfg(`${stub.url}/i`), makeContext(store));
  t.teardown(async () => {
    await auth.close?.();
    await store.close();
  });
  const out = await auth.authenticate({ ...bearer('secret-token-500'), log });
  t.equal(code(out), 'service_unavailable');
  t.ok(lines.length > 0, 'the failure is logged');
  t.notMatch(lines.join(''), /secret-token|s3cret|boom/);
});

t.test('interpretIntrospection is strict about types', async (t) => {
  const now = 1_000_000;
  t.equal(interpretIntrospection({ active: true, username: 'a', exp: now + 1 }, now, undefined).active, true);
  t.equal(interpretIntrospection({ active: true, username: 'a', exp: now }, now, undefined).active, false);
  t.equal(interpretIntrospection({ active: true, username: '' }, now, undefined).active, false);
  t.equal(interpretIntrospection({ active: true, username: 5 }, now, undefined).active, false);
  t.equal(interpretIntrospection({ active: true, username: 'a', exp: Infinity }, now, undefined).active, false);
  t.equal(interpretIntrospection({ active: true, username: 'a', aud: ['x'] }, now, 'y').active, false);
});
