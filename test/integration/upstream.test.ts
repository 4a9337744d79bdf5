import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

async function freePortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

async function hangingServer(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const s: Server = createServer(() => { /* never answers */ });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

t.test('round-robin over an upstream list skips a target that refuses connections', async (t) => {
  const a = await startTestEcho(t);
  const b = await startTestEcho(t);
  const dead = await freePortUrl();
  const gw = await startTestGateway(t, {
    routes: [{ name: 'rr', match: { path: '/**' }, upstream: [a.url, dead, b.url], auth: 'anonymous' }],
  });
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) {
    const res = await request(`${gw.url}/x${i}`);
    statuses.push(res.statusCode);
    await res.body.dump();
  }
  // At most one request hit the dead target before it was marked down.
  t.ok(statuses.filter((s) => s === 502).length <= 1, `statuses ${statuses.join(',')}`);
  t.ok(a.received.length >= 4 && b.received.length >= 4, `a=${a.received.length} b=${b.received.length}`);
  const ready = await request(`${gw.adminUrl}/readyz`);
  const body = (await ready.body.json()) as { checks: Record<string, string> };
  t.equal(body.checks['upstream:rr'], 'ok', 'the route still has healthy targets');
});

t.test('unreachable upstream is 502 upstream_unavailable, a slow one 504 upstream_timeout', async (t) => {
  const dead = await freePortUrl();
  const slow = await hangingServer(t);
  const gw = await startTestGateway(t, {
    server: { timeouts: { connect: '1s', upstream: '30s' } },
    routes: [
      { name: 'dead', match: { path: '/dead/**' }, upstream: dead, auth: 'anonymous' },
      { name: 'slow', match: { path: '/slow/**' }, upstream: slow, auth: 'anonymous', timeout: '300ms' },
    ],
  });
  const r1 = await request(`${gw.url}/dead/x`);
  t.equal(r1.statusCode, 502);
  t.match(r1.headers['content-type'], /problem\+json/);
  const b1 = (await r1.body.json()) as Record<string, unknown>;
  t.equal(b1.code, 'upstream_unavailable');
  t.notMatch(JSON.stringify(b1), /ECONNREFUSED|127\.0\.0\.1|stack/, 'no internals leak');
  const r2 = await request(`${gw.url}/slow/x`);
  t.equal(r2.statusCode, 504);
  t.match(await r2.body.json(), { code: 'upstream_timeout' });
});

t.test('large upload with Expect: 100-continue streams through', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, { routes: [{ name: 'up', match: { path: '/**' }, upstream: echo.url, auth: 'anonymous' }] });
  const { request: httpRequest } = await import('node:http');
  const size = 2 * 1024 * 1024;
  const payload = Buffer.alloc(size, 'a');
  const u = new URL(gw.url);
  const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/upload', headers: { expect: '100-continue', 'content-type': 'application/octet-stream', 'content-length': size } });
    req.on('continue', () => req.end(payload));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  });
  t.equal(result.status, 200);
  t.equal((JSON.parse(result.body) as { bodyLength: number }).bodyLength, size);
  t.notOk(echo.received[0]?.headers.expect, 'expect is not forwarded');
});
