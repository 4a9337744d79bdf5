// The fast path's own duties (issue 12): a client that goes away aborts the upstream request,
// bodies stream both ways without being buffered, and an upstream that dies mid-response
// does not leave the client hanging.
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { startTestGateway, waitFor, type Teardown } from '../helpers/gateway.js';

async function upstream(t: Teardown, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('a client that goes away aborts the upstream request', async (t) => {
  let upstreamClosed = false;
  let chunks = 0;
  const url = await upstream(t, (_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const timer = setInterval(() => { chunks++; res.write('x'.repeat(1024)); }, 10);
    res.on('close', () => { clearInterval(timer); upstreamClosed = true; });
  });
  const gw = await startTestGateway(t, { routes: [{ name: 'stream', match: { path: '/stream/**' }, upstream: url, auth: 'anonymous' }] }, { logLevel: 'warn' });
  const u = new URL(gw.url);
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: '/stream/x', agent: false }, (res) => {
      res.once('data', () => { req.destroy(); resolve(); });
    });
    req.on('error', (err) => { if (!req.destroyed) reject(err); });
    req.end();
  });
  t.ok(await waitFor(() => upstreamClosed, 5000), 'the upstream saw the request end');
  const at = chunks;
  await new Promise((r) => setTimeout(r, 100));
  t.equal(chunks, at, 'and stopped sending');
});

t.test('a 24 MB upload and a 24 MB download stream through intact', async (t) => {
  const size = 24 * 1024 * 1024;
  const url = await upstream(t, (req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; h.update(c); });
    req.on('end', () => {
      if (req.url?.startsWith('/big/down')) {
        res.writeHead(200, { 'content-length': size });
        const chunk = Buffer.alloc(64 * 1024, 7);
        let sent = 0;
        const pump = (): void => { while (sent < size) { sent += chunk.length; if (!res.write(chunk)) { res.once('drain', pump); return; } } res.end(); };
        pump();
      } else res.end(JSON.stringify({ n, sha: h.digest('hex') }));
    });
  });
  const gw = await startTestGateway(t, { routes: [{ name: 'big', match: { path: '/big/**' }, upstream: url, auth: 'anonymous' }] }, { logLevel: 'warn' });
  const body = Buffer.alloc(size, 3);
  const up = await fetch(`${gw.url}/big/up`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
  t.same(await up.json(), { n: size, sha: createHash('sha256').update(body).digest('hex') }, 'the upstream got every byte');
  // Chunked (no Content-Length): a stream body.
  const chunked = await fetch(`${gw.url}/big/up`, { method: 'PUT', body: new Blob([body]).stream(), duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit);
  t.same(await chunked.json(), { n: size, sha: createHash('sha256').update(body).digest('hex') }, 'a chunked upload arrives whole');
  const down = await fetch(`${gw.url}/big/down`);
  t.equal(down.status, 200);
  t.equal((await down.arrayBuffer()).byteLength, size, 'the client got every byte');
  const head = await fetch(`${gw.url}/big/down`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('content-length'), String(size), 'HEAD: the length, no body');
});

t.test('an upstream that dies mid-response closes the client connection', async (t) => {
  const url = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write('partial');
    setTimeout(() => res.destroy(), 20);
  });
  const gw = await startTestGateway(t, { routes: [{ name: 'dies', match: { path: '/dies/**' }, upstream: url, auth: 'anonymous' }] }, { logLevel: 'warn' });
  const r = await fetch(`${gw.url}/dies/x`);
  t.equal(r.status, 200);
  await t.rejects(r.arrayBuffer(), 'the body ends in an error, not a hang');
});
