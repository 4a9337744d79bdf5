// Issue 12: for arbitrary request paths, queries, methods and headers, the fast path decides,
// forwards and rewrites exactly as the Fastify + reply-from proxy did (kept verbatim as the
// oracle in _legacy-server.ts). Both gateways run on one config and one echo upstream; each
// generated request goes to both, and the status plus everything the upstream received must match.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/ops/logger.js';
import { send } from '../helpers/http.js';
import { makeTempDir, startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { buildGateway as buildLegacyGateway } from './_legacy-server.js';

const KEY = 'ak_prop_' + 'x'.repeat(24);
const sha = (k: string): string => 'sha256:' + createHash('sha256').update(k).digest('hex');

/** Headers that describe the connection between gateway and upstream, not the request. */
const CONNECTION_LEVEL = new Set(['connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/** The headers as a set: the order in which the two proxies emit them carries no meaning. */
function comparable(headers: Record<string, string | string[] | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(headers).sort()) if (!CONNECTION_LEVEL.has(k)) out[k] = headers[k];
  return out;
}

t.test('the fast path matches the legacy proxy on route decision, forwarded path and forwarded headers', async (t) => {
  const echo = await startTestEcho(t);
  const config = {
    server: { trustedProxies: ['127.0.0.1/32'], paths: { caseInsensitive: false } },
    authenticators: {
      keys: { type: 'apikey', queryParam: 'api_key', keys: [{ id: 'k', hash: sha(KEY), user: 'svc', groups: ['admin'], scopes: ['orders:read'] }] },
    },
    routes: [
      { name: 'host', match: { host: 'admin.example.test', path: '/**' }, upstream: `${echo.url}/h`, auth: ['keys'] },
      { name: 'v1', match: { path: '/v1/**', methods: ['GET', 'POST'] }, upstream: `${echo.url}/api`, auth: ['keys'], stripPath: '/v1' },
      { name: 'pass', match: { path: '/pass/**' }, upstream: echo.url, auth: ['keys'], passCredentials: true },
      { name: 'admin', match: { path: '/admin/**' }, upstream: echo.url, auth: ['keys'], require: { groups: ['admin'] } },
      { name: 'public', match: { path: '/public/**' }, upstream: echo.url, auth: 'anonymous' },
    ],
  };
  const fast = await startTestGateway(t, config, { logLevel: 'warn' });

  // The legacy gateway, built from the same file by the pre-fast-path code.
  const dir = makeTempDir(t);
  const file = join(dir, 'authgate.yaml');
  writeFileSync(file, stringify({ ...config, server: { ...config.server, listen: { host: '127.0.0.1', port: 0 } }, store: { driver: 'memory' } }));
  const legacyServer = createServer();
  await new Promise<void>((r) => legacyServer.listen(0, '127.0.0.1', r));
  const legacyUrl = `http://127.0.0.1:${(legacyServer.address() as AddressInfo).port}`;
  const legacy = await buildLegacyGateway(await loadConfig(file), { logger: createLogger('warn'), defaultPublicUrl: fast.url });
  legacyServer.on('request', (req, res) => legacy.handleRequest(req, res));
  t.teardown(async () => { legacyServer.closeAllConnections(); await new Promise<void>((r) => legacyServer.close(() => r())); await legacy.close(); });

  const segment = fc.constantFrom('admin', 'ADMIN', 'public', 'v1', 'V1', 'pass', 'users', 'a b', '%41', '%2e', '..', '.', '', 'x;y', '%3b', '~u', 'é', '%zz', '%00', 'q?');
  const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => '/' + s.join('/').replace(/ /g, '%20').replace(/é/g, '%C3%A9'));
  const query = fc.option(fc.array(fc.constantFrom(`api_key=${KEY}`, `api%5Fkey=${KEY}`, 'y=1', 'z=%41+b', 'flag', "x='q'", 'access_token=t', ''), { minLength: 1, maxLength: 4 }).map((q) => q.join('&')), { nil: undefined });
  const method = fc.constantFrom('GET', 'HEAD', 'POST', 'DELETE', 'PUT');
  const header = fc.constantFrom<[string, string]>(
    ['x-api-key', KEY], ['x-api-key', 'wrong'], ['authorization', 'Bearer x'],
    ['x-forwarded-for', '10.0.0.1'], ['x-forwarded-for', '6.6.6.6, 10.1.1.1'], ['x-forwarded-host', 'admin.example.test'], ['x-forwarded-host', 'a.test, admin.example.test'],
    ['x-forwarded-proto', 'https'], ['x-forwarded-user', 'admin'], ['x_forwarded_user', 'admin'], ['forwarded', 'for=1.2.3.4'], ['x-real-ip', '1.2.3.4'],
    ['x-auth-user', 'mallory'], ['x_auth_groups', 'admin'], ['connection', 'x-api-key'], ['connection', 'keep-alive, x-forwarded-for'], ['te', 'trailers'],
    ['cookie', 'a=1; authgate_session=zzz; b=2'], ['x-original-url', '/public/x'], ['origin', 'https://evil.test'], ['sec-fetch-site', 'cross-site'],
  );
  const host = fc.constantFrom('gw.test', 'admin.example.test', 'ADMIN.example.test.', 'admin.example.test:8080');

  await fc.assert(fc.asyncProperty(path, query, method, fc.uniqueArray(header, { maxLength: 6, selector: (h) => h[0] }), host, async (p, q, m, hs, h) => {
    const target = q === undefined ? p : `${p}?${q}`;
    const headers: Record<string, string> = { host: h };
    for (const [k, v] of hs) headers[k] = v;
    const results = [];
    for (const base of [legacyUrl, fast.url]) {
      const before = echo.received.length;
      const r = await send(base, target, { method: m, headers, body: m === 'POST' || m === 'PUT' ? 'body' : undefined });
      const got = echo.received.slice(before);
      results.push({ status: r.status, code: r.status >= 400 ? (r.body ? (JSON.parse(r.body) as { code?: string }).code : undefined) : undefined, forwarded: got.map((g) => ({ method: g.method, url: g.url, headers: comparable(g.headers), body: g.body })) });
    }
    const [old, now] = results;
    t.same(now, old, `${m} ${target} ${JSON.stringify(headers)}`);
    return JSON.stringify(now) === JSON.stringify(old);
  }), { numRuns: Number(process.env.PROPERTY_RUNS ?? 150), seed: process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : undefined });
});

t.test('GET /verify on the fast path answers as the legacy forward-auth endpoint did', async (t) => {
  const config = {
    server: { trustedProxies: ['127.0.0.1/32'] },
    authenticators: { keys: { type: 'apikey', keys: [{ id: 'k', hash: sha(KEY), user: 'svc', groups: ['staff'] }] } },
    routes: [
      { name: 'host', match: { host: 'admin.example.test', path: '/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys'] },
      { name: 'admin', match: { path: '/admin/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys'], require: { groups: ['admin'] } },
      { name: 'ro', match: { path: '/ro/**', methods: ['GET'] }, upstream: 'http://127.0.0.1:9', auth: 'anonymous' },
      { name: 'api', match: { path: '/api/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys'], onUnauthenticated: 'login' },
    ],
  };
  const fast = await startTestGateway(t, config, { logLevel: 'warn' });
  const dir = makeTempDir(t);
  const file = join(dir, 'authgate.yaml');
  writeFileSync(file, stringify({ ...config, server: { ...config.server, listen: { host: '127.0.0.1', port: 0 } }, store: { driver: 'memory' } }));
  const legacyServer = createServer();
  await new Promise<void>((r) => legacyServer.listen(0, '127.0.0.1', r));
  const legacyUrl = `http://127.0.0.1:${(legacyServer.address() as AddressInfo).port}`;
  const legacy = await buildLegacyGateway(await loadConfig(file), { logger: createLogger('warn'), defaultPublicUrl: fast.url });
  legacyServer.on('request', (req, res) => legacy.handleRequest(req, res));
  t.teardown(async () => { legacyServer.closeAllConnections(); await new Promise<void>((r) => legacyServer.close(() => r())); await legacy.close(); });

  // Both sets complete (the new rule refuses mixes and missing methods; those cases are the
  // threat tests'): the described request decides alike.
  const uri = fc.tuple(fc.constantFrom('/admin', '/ro', '/api', '/x', '/ADMIN', '/ro/..', '/admin/%2e%2e'), fc.constantFrom('/a', '/', '/b/../c', ''), fc.constantFrom('', '?y=1', '?access_token=t')).map(([a, b, c]) => a + b + c);
  const described = fc.oneof(
    fc.record({ 'x-forwarded-method': fc.constantFrom('GET', 'POST', 'get', 'HEAD'), 'x-forwarded-proto': fc.constantFrom('http', 'https'), 'x-forwarded-host': fc.constantFrom('gw.test', 'admin.example.test'), 'x-forwarded-uri': uri }),
    fc.record({ 'x-original-method': fc.constantFrom('GET', 'POST'), 'x-original-url': fc.tuple(fc.constantFrom('https://gw.test', 'http://admin.example.test'), uri).map(([o, u]) => o + u) }),
  );
  const extra = fc.subarray([['x-api-key', KEY], ['authorization', 'Bearer z'], ['accept', 'text/html'], ['x-forwarded-for', '10.0.0.1'], ['x-auth-user', 'mallory']] as [string, string][]);
  await fc.assert(fc.asyncProperty(described, extra, async (d, ex) => {
    const headers: Record<string, string> = { ...d };
    for (const [k, v] of ex) headers[k] = v;
    const [old, now] = await Promise.all([legacyUrl, fast.url].map(async (base) => {
      const r = await send(base, '/.auth/verify', { headers });
      const identity = Object.fromEntries(Object.entries(r.headers).filter(([k]) => k.startsWith('x-auth-')));
      return { status: r.status, location: r.headers.location, cache: r.headers['cache-control'], identity, code: r.status >= 400 ? (JSON.parse(r.body) as { code?: string }).code : undefined };
    }));
    t.same(now, old, JSON.stringify(headers));
    return JSON.stringify(now) === JSON.stringify(old);
  }), { numRuns: Number(process.env.PROPERTY_RUNS ?? 150) });
});
