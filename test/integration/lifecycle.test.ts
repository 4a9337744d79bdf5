import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { request } from 'undici';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

t.test('reload swaps the config atomically; an invalid file keeps the old one serving', async (t) => {
  const echo = await startTestEcho(t);
  const config = { routes: [{ name: 'a', match: { path: '/a/**' }, upstream: echo.url, auth: 'anonymous' }] };
  const gw = await startTestGateway(t, config);
  t.equal((await request(`${gw.url}/a/x`)).statusCode, 200);
  t.equal((await request(`${gw.url}/b/x`)).statusCode, 404);

  gw.writeConfig({ routes: [{ name: 'b', match: { path: '/b/**' }, upstream: echo.url, auth: 'anonymous' }] });
  t.equal(await gw.reload(), true);
  t.equal((await request(`${gw.url}/b/x`)).statusCode, 200);
  t.equal((await request(`${gw.url}/a/x`)).statusCode, 404);

  writeFileSync(gw.configFile, 'routes: [ { name: broken, unknownKey: 1 } ]\n');
  t.equal(await gw.reload(), false, 'invalid config refused');
  t.equal((await request(`${gw.url}/b/x`)).statusCode, 200, 'old config still serves');
  t.ok(gw.rawLogs.some((l) => l.includes('authgate.yaml:1:')), 'errors logged with file:line');
});

t.test('close drains in-flight requests before stopping', async (t) => {
  let release: (() => void) | undefined;
  const slow = createServer((_req, res) => {
    release = () => res.end('done');
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { slow.closeAllConnections(); slow.close(() => r()); }));
  const upstream = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  void startTestEcho;
  const gw = await startTestGateway(t, { server: { drainTimeout: '5s' }, routes: [{ name: 's', match: { path: '/**' }, upstream, auth: 'anonymous' }] });
  const inflight = request(`${gw.url}/slow`);
  const deadline = Date.now() + 5000;
  while (!release && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.ok(release, 'request reached the upstream');
  const closing = gw.close();
  setTimeout(() => release?.(), 100);
  const res = await inflight;
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'done');
  await closing;
  await t.rejects(request(`${gw.url}/again`), 'no longer accepting');
});
