// THREATS M (93-94): header/cookie size and slow clients. Sizes and counts are kept small
// enough to run in seconds; the slow-client cases shorten the server's timeouts on the running
// gateway (the production values are asserted separately).
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { waitFor } from '../helpers/gateway.js';
import { send, sendRaw } from '../helpers/http.js';
import { startThreatGateway, statusOf } from './_fixtures.js';

t.test('93 oversized headers, many headers, a huge cookie: 431 quickly; other clients unaffected', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const H = `Host: ${host}\r\n`;
  const cases: Record<string, string> = {
    'one 100 kB header': `GET /public/x HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`,
    '2,000 headers': `GET /public/x HTTP/1.1\r\n${H}${Array.from({ length: 2000 }, (_, i) => `X-H-${i}: v`).join('\r\n')}\r\n\r\n`,
    '80 kB cookie': `GET /public/x HTTP/1.1\r\n${H}Cookie: ${Array.from({ length: 2000 }, (_, i) => `c${i}=${'v'.repeat(36)}`).join('; ')}\r\n\r\n`,
    '100 kB Authorization': `GET /api/x HTTP/1.1\r\n${H}Authorization: Bearer ${'e'.repeat(100 * 1024)}\r\n\r\n`,
    '100 kB request line': `GET /public/${'a'.repeat(100 * 1024)} HTTP/1.1\r\n${H}\r\n`,
  };
  for (const [name, raw] of Object.entries(cases)) {
    const started = performance.now();
    const out = await sendRaw(gw.url, raw);
    t.equal(statusOf(out), 431, name);
    t.match(out, /application\/problem\+json/, `${name}: problem+json`);
    t.ok(performance.now() - started < 2000, `${name}: answered quickly`);
  }
  t.equal(echo.received.length, 0, 'NF');

  // 50 connections at once, each with a 79 kB header, while a normal client keeps working.
  const flood = Array.from({ length: 50 }, () => sendRaw(gw.url, `GET /public/x HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(79 * 1024)}\r\n\r\n`, 5000));
  const normal = Array.from({ length: 5 }, (_, i) => send(gw.url, `/public/ok${i}`));
  const [floodOut, normalOut] = await Promise.all([Promise.all(flood), Promise.all(normal)]);
  t.ok(floodOut.every((o) => statusOf(o) === 431), 'every oversized request got 431');
  t.same(normalOut.map((r) => r.status), [200, 200, 200, 200, 200], 'normal requests unaffected');
  t.equal(echo.received.length, 5);
});

t.test('94 the production server timeouts are bounded', async (t) => {
  const { gw } = await startThreatGateway(t);
  t.ok(gw.server.headersTimeout > 0 && gw.server.headersTimeout <= 60_000, `headersTimeout ${gw.server.headersTimeout} ms`);
  t.ok(gw.server.requestTimeout > 0 && gw.server.requestTimeout <= 300_000, `requestTimeout ${gw.server.requestTimeout} ms`);
  t.ok(gw.server.keepAliveTimeout > 0 && gw.server.keepAliveTimeout <= 60_000, `keepAliveTimeout ${gw.server.keepAliveTimeout} ms`);
  t.ok(gw.adminServer.headersTimeout > 0 && gw.adminServer.headersTimeout <= 60_000, 'admin headersTimeout');
});

/** Open a socket that sends one header byte every `everyMs`; resolves with what the server said when it closed. */
function slowHeaders(base: string, host: string, everyMs: number): { done: Promise<{ data: string; ms: number }>; socket: Socket } {
  const u = new URL(base);
  const socket = connect({ host: u.hostname, port: Number(u.port) });
  const started = performance.now();
  const chunks: Buffer[] = [];
  const prefix = `GET /public/x HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `;
  let timer: NodeJS.Timeout | undefined;
  socket.on('connect', () => {
    socket.write(prefix);
    timer = setInterval(() => { if (socket.writable) socket.write('a'); }, everyMs);
  });
  socket.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<{ data: string; ms: number }>((resolve) => {
    socket.on('close', () => { clearInterval(timer); resolve({ data: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - started }); });
    socket.on('error', () => undefined);
  });
  return { done, socket };
}

t.test('94 slowloris: slow headers are cut at headersTimeout, slow bodies at requestTimeout; others still served', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  // Shortened on the running server (Node reads these on every timeout check, once a second).
  gw.server.headersTimeout = 1_000;
  gw.server.requestTimeout = 2_000;

  const slow = Array.from({ length: 20 }, () => slowHeaders(gw.url, host, 200));
  t.teardown(() => { for (const s of slow) s.socket.destroy(); });
  const ok = await send(gw.url, '/public/during');
  t.equal(ok.status, 200, 'a normal client is served while the slow ones dribble');
  const results = await Promise.all(slow.map((s) => s.done));
  for (const r of results) {
    t.ok(r.ms < 5_000, `closed after ${Math.round(r.ms)} ms`);
    t.ok(r.data === '' || statusOf(r.data) === 408, `answer: ${r.data.split('\r\n')[0] || '(closed)'}`);
  }

  // A body trickled at 1 byte per 200 ms against a 1 MB Content-Length.
  const u = new URL(gw.url);
  const body = connect({ host: u.hostname, port: Number(u.port) });
  t.teardown(() => body.destroy());
  const chunks: Buffer[] = [];
  body.on('data', (c: Buffer) => chunks.push(c));
  body.on('error', () => undefined);
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  body.on('connect', () => {
    body.write(`POST /public/upload HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`);
    timer = setInterval(() => { if (body.writable) body.write('x'); }, 200);
  });
  const closed = await waitFor(() => body.destroyed || body.readableEnded, 8_000, 50);
  clearInterval(timer);
  t.ok(closed, `the slow body was cut (${Math.round(performance.now() - started)} ms)`);
  t.ok(performance.now() - started < 8_000);
  t.notOk(echo.received.some((r) => r.url === '/public/upload'), 'the upstream never got a complete slow request');
  t.equal((await send(gw.url, '/public/after')).status, 200, 'the gateway still serves');
});

t.test('94 a body over the limit on the gateway endpoints is 413 from its Content-Length alone', async (t) => {
  const { gw, host } = await startThreatGateway(t);
  for (const path of ['/.auth/jwt/token', '/.auth/token', '/.auth/oauth/token']) {
    const started = performance.now();
    // Only the head is sent: the gateway must answer without waiting for the 2 MB.
    const out = await sendRaw(gw.url, `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{"username":"`, 3000);
    t.equal(statusOf(out), 413, path);
    t.ok(performance.now() - started < 2500, `${path}: answered before the body arrived`);
  }
});
