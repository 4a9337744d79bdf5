// plugins/hmac-signature.js through a real gateway: signature over `${timestamp}.${body}`,
// timestamp tolerance, single use (also across instances sharing Redis), fail closed.
import { createHmac, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import t from 'tap';
import type { GatewayContext } from '../../src/context.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { createPluginAuthenticator } from '../../src/pipeline/authenticators/plugin.js';
import { runChain } from '../../src/pipeline/chain.js';
import type { AuthRequest } from '../../src/pipeline/types.js';
import type { Store } from '../../src/store/types.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

const MODULE = fileURLToPath(new URL('../../plugins/hmac-signature.js', import.meta.url));
const SECRET = 'whsec-test-0123456789abcdef';

function sign(body: string | Buffer, ts: number | string, secret = SECRET): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${ts}.`).update(body).digest('hex');
}

const now = (): number => Math.floor(Date.now() / 1000);

function config(upstream: string, options: Record<string, unknown> = {}, store?: Record<string, unknown>): Record<string, unknown> {
  return {
    ...(store ? { store } : {}),
    authenticators: { hook: { type: 'plugin', module: MODULE, options: { secret: SECRET, user: 'github', groups: ['webhooks'], ...options } } },
    routes: [{ name: 'hooks', match: { path: '/hooks/**', methods: ['POST'] }, upstream, auth: ['hook'] }],
  };
}

t.test('a correctly signed webhook passes once; the upstream gets the identity and the exact body', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url));
  const body = '{"action":"opened","n":1}';
  const ts = now();
  const headers = { 'content-type': 'application/json', 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts) };

  const ok = await send(gw.url, '/hooks/github', { method: 'POST', headers, body });
  t.equal(ok.status, 200, ok.body);
  t.equal(echo.received.length, 1);
  const rec = echo.received[0];
  t.equal(rec?.body, body, 'exact body forwarded');
  t.equal(rec?.headers['x-auth-user'], 'github');
  t.equal(rec?.headers['x-auth-groups'], 'webhooks');
  t.equal(rec?.headers['x-auth-method'], 'plugin:hook');

  const replay = await send(gw.url, '/hooks/github', { method: 'POST', headers, body });
  t.equal(replay.status, 401, 'the same signature a second time is refused');
  t.equal(replay.json().code, 'invalid_credentials');
  t.equal(echo.received.length, 1, 'NF');
  t.notOk(gw.rawLogs.some((l) => l.includes(SECRET)), 'the secret is never logged');
});

t.test('every tampering or malformed signature is refused before the upstream', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url));
  const body = '{"ref":"main"}';
  const ts = now();
  const cases: [string, Record<string, string>, string, number][] = [
    ['body changed', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts) }, '{"ref":"evil"}', 401],
    ['timestamp header changed', { 'x-signature-timestamp': String(ts + 1), 'x-hub-signature-256': sign(body, ts) }, body, 401],
    ['wrong secret', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts, 'another-secret-0123456789') }, body, 401],
    ['too old', { 'x-signature-timestamp': String(ts - 301), 'x-hub-signature-256': sign(body, ts - 301) }, body, 401],
    ['too far in the future', { 'x-signature-timestamp': String(ts + 301), 'x-hub-signature-256': sign(body, ts + 301) }, body, 401],
    ['no timestamp', { 'x-hub-signature-256': sign(body, ts) }, body, 401],
    ['timestamp not a number', { 'x-signature-timestamp': '1e9', 'x-hub-signature-256': sign(body, '1e9') }, body, 401],
    ['negative timestamp', { 'x-signature-timestamp': String(-ts), 'x-hub-signature-256': sign(body, -ts) }, body, 401],
    ['sha1 scheme', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': 'sha1=' + createHmac('sha1', SECRET).update(`${ts}.${body}`).digest('hex') }, body, 401],
    ['truncated hex', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts).slice(0, 40) }, body, 401],
    ['empty signature', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': '' }, body, 401],
    ['signature without the timestamp prefix (plain GitHub)', { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex') }, body, 401],
  ];
  for (const [what, headers, sentBody, status] of cases) {
    const r = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: sentBody });
    t.equal(r.status, status, what);
    t.notMatch(r.body, new RegExp(SECRET), `${what}: no secret in the body`);
  }
  const dup = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'application/json', 'x-signature-timestamp': String(ts), 'x-hub-signature-256': [sign(body, ts), sign(body, ts)] }, body });
  t.equal(dup.status, 400, 'two signature headers are ambiguous');
  const none = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  t.equal(none.status, 401, 'no signature: not mine, nothing else in the chain → 401');
  t.equal(none.json().code, 'unauthenticated');
  t.equal(echo.received.length, 0, 'NF');
});

t.test('custom header names and tolerance', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, config(echo.url, { signatureHeader: 'X-Sig', timestampHeader: 'X-Ts', toleranceSeconds: 5 }));
  const body = 'payload';
  const ts = now();
  const ok = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-ts': String(ts), 'x-sig': sign(body, ts) }, body });
  t.equal(ok.status, 200);
  const old = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-ts': String(ts - 10), 'x-sig': sign(body, ts - 10) }, body });
  t.equal(old.status, 401, 'outside the 5 s tolerance');
  const defaultHeader = await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts) }, body });
  t.equal(defaultHeader.status, 401, 'the default header is not read when another is configured');
  t.equal(echo.received.length, 1);
});

t.test('a replay is refused by another gateway instance sharing the Redis store', async (t) => {
  const keyPrefix = `test:${randomUUID()}:`;
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  t.teardown(async () => {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  const echo = await startTestEcho(t);
  const store = { driver: 'redis', redis: { url: 'redis://127.0.0.1:6379', keyPrefix } };
  const a = await startTestGateway(t, config(echo.url, {}, store));
  const b = await startTestGateway(t, config(echo.url, {}, store));
  const body = 'cross-instance';
  const ts = now();
  const headers = { 'content-type': 'text/plain', 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts) };
  t.equal((await send(a.url, '/hooks/x', { method: 'POST', headers, body })).status, 200);
  t.equal((await send(b.url, '/hooks/x', { method: 'POST', headers, body })).status, 401, 'instance B refuses the replay');
  t.equal(echo.received.length, 1);
  const keys = await redis.keys(`${keyPrefix}*`);
  t.ok(keys.length >= 1, 'the seen-signature marker is in Redis');
  const ttls = await Promise.all(keys.map((k) => redis.pttl(k)));
  t.ok(ttls.every((ms) => ms > 0 && ms <= 301_000), `markers expire with the tolerance (${ttls.join(',')})`);
  t.notOk(keys.some((k) => k.includes(SECRET)));
});

t.test('a store failure fails closed (store_unavailable), never a pass', async (t) => {
  const broken: Store = new Proxy({} as Store, {
    get: (_target, prop) => (prop === 'driver' ? 'redis' : async () => { throw new StoreUnavailableError(); }),
  });
  const logged: unknown[] = [];
  const log = { child: () => log, error: (o: unknown) => logged.push(o), warn: () => undefined, info: () => undefined, debug: () => undefined } as unknown as GatewayContext['log'];
  const ctx = { configDir: process.cwd(), publicUrl: new URL('http://127.0.0.1'), store: broken, log } as unknown as GatewayContext;
  const auth = await createPluginAuthenticator('hook', { type: 'plugin', module: MODULE, options: { secret: SECRET } }, ctx);
  t.equal(auth.type, 'plugin');
  t.equal(auth.needsBody, true, 'needsBody comes from the plugin');
  const body = Buffer.from('x');
  const ts = now();
  const request = { method: 'POST', path: '/hooks', query: '', host: 'h', ip: '127.0.0.1', cookies: {}, log, body,
    headers: { 'x-signature-timestamp': String(ts), 'x-hub-signature-256': sign(body, ts) } } as unknown as AuthRequest;
  const r = await runChain([auth], request);
  t.equal(r.kind, 'reject');
  t.equal(r.kind === 'reject' ? r.rejection.code : undefined, 'store_unavailable');
});

t.test('options are validated at start', async (t) => {
  const echo = await startTestEcho(t);
  const err = await startTestGateway(t, config(echo.url, { secret: 'too-short' })).then(() => undefined, (e: unknown) => e as Error);
  t.match(err?.message, /authenticators\.hook: invalid plugin options: options\.secret/);
  t.notOk(err?.message.includes('too-short'));
  const err2 = await startTestGateway(t, config(echo.url, { toleranceSeconds: 86_400 })).then(() => undefined, (e: unknown) => e as Error);
  t.match(err2?.message, /options\.toleranceSeconds must be <= 3600/);
});
