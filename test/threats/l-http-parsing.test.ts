// THREATS L (86-91): request smuggling and HTTP parsing, sent as raw bytes to a real gateway.
// A refused request never reaches the upstream, and nothing after it on the connection does.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { send, sendRaw } from '../helpers/http.js';
import { basic, KEY_ALICE, startThreatGateway, statusOf } from './_fixtures.js';

const SMUGGLED = 'GET /admin/users HTTP/1.1\r\nX: x';

/** Every response status line in a raw reply (pipelined answers included). */
function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

t.test('86 CL.TE, TE.CL and malformed Content-Length: 400, connection closed, nothing forwarded', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const H = `Host: ${host}\r\n`;
  const attacks: Record<string, string> = {
    'CL.TE': `POST /public/x HTTP/1.1\r\n${H}Content-Length: 36\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'TE.CL': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST /admin/users HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n`,
    'CL 5, 5': `POST /public/x HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`,
    'two CL': `POST /public/x HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    'two different CL': `POST /public/x HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 44\r\n\r\nhello${SMUGGLED}`,
    'CL +5': `POST /public/x HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`,
    'CL -1': `POST /public/x HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\nhello`,
    'CL 0x5': `POST /public/x HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`,
    'two TE': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
  };
  for (const [name, raw] of Object.entries(attacks)) {
    const started = Date.now();
    const out = await sendRaw(gw.url, raw + `\r\n\r\nGET /admin/users HTTP/1.1\r\n${H}\r\n`, 4000);
    t.same(statuses(out), [400], `${name}: exactly one answer, 400`);
    t.ok(Date.now() - started < 3500, `${name}: the connection was closed by the gateway`);
  }
  t.equal(echo.received.length, 0, 'NF: nothing, and certainly no GET /admin/users, reached the upstream');
});

t.test('87 Transfer-Encoding obfuscation', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const H = `Host: ${host}\r\n`;
  const body = `5\r\nhello\r\n0\r\n\r\n`;
  for (const [name, te] of [
    ['chunked, identity', 'Transfer-Encoding: chunked, identity\r\n'],
    ['space before colon', 'Transfer-Encoding : chunked\r\n'],
    ['xchunked', 'Transfer-Encoding: xchunked\r\n'],
    ['obs-fold', 'Transfer-Encoding:\r\n chunked\r\n'],
    ['identity', 'Transfer-Encoding: identity\r\n'],
    ['chunked;x', 'Transfer-Encoding: chunked;x=1\r\n'],
    ['vertical tab', 'Transfer-Encoding:\x0bchunked\r\n'],
    ['NUL', 'Transfer-Encoding: chunked\x00\r\n'],
  ] as const) {
    const out = await sendRaw(gw.url, `POST /public/x HTTP/1.1\r\n${H}${te}\r\n${body}`);
    t.equal(statusOf(out), 400, name);
  }
  t.equal(echo.received.length, 0, 'NF');
  // A tab is legal whitespace (RFC 9110 OWS): then the body must be read as chunked, and the
  // upstream gets it re-framed — one request, the decoded bytes, never the chunk syntax.
  const tab = await sendRaw(gw.url, `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n${body}`);
  t.ok([200, 400].includes(statusOf(tab)), `TE with a tab → ${statusOf(tab)}`);
  if (statusOf(tab) === 200) {
    t.equal(echo.received.length, 1);
    t.equal(echo.received[0]?.body, 'hello');
    t.notOk(echo.received[0]?.headers['transfer-encoding'] && echo.received[0]?.headers['content-length'], 'one framing upstream');
  }
});

t.test('88 bare LF, missing CRLF and chunk extensions', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const H = `Host: ${host}\r\n`;
  const attacks: Record<string, string> = {
    'bare LF everywhere': `GET /public/x HTTP/1.1\nHost: ${host}\n\n`,
    'one header ends in LF': `GET /public/x HTTP/1.1\r\n${H}X-A: 1\nX-B: 2\r\n\r\n`,
    'bare CR': `GET /public/x HTTP/1.1\r\n${H}X-A: 1\rX-B: 2\r\n\r\n`,
    'chunk ext with LF': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;ext\nhello\r\n0\r\n\r\n`,
    'oversized chunk ext': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;${'a'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`,
    'chunk size LF only': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`,
    'chunk data without CRLF': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n`,
    'invalid chunk size': `POST /public/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    'space in header name': `GET /public/x HTTP/1.1\r\n${H}X Auth User: admin\r\n\r\n`,
    'HTTP/1.2': `GET /public/x HTTP/1.2\r\n${H}\r\n`,
  };
  for (const [name, raw] of Object.entries(attacks)) {
    const out = await sendRaw(gw.url, raw);
    t.equal(statusOf(out), 400, name);
  }
  t.equal(echo.received.length, 0, 'NF');
});

t.test('90 h2c and premature Upgrade: never a 101 without an authenticated request and an upstream 101', async (t) => {
  const { gw, echo, host } = await startThreatGateway(t);
  const h2c = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n${extra}\r\n`;
  for (const [path, extra] of [['/admin/', ''], ['/public/', ''], ['/api/x', `X-API-Key: ${KEY_ALICE}\r\n`], ['/ws/x', `X-API-Key: ${KEY_ALICE}\r\n`]]) {
    const out = await sendRaw(gw.url, h2c(path as string, extra as string) + '\x50\x52\x49 * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    t.notMatch(out, /^HTTP\/1\.1 101/, `${path}: no 101 for h2c`);
    t.ok(statusOf(out) >= 400, `${path}: refused (${statusOf(out)})`);
  }
  t.equal(echo.received.length, 0, 'h2c upgrades are never forwarded');

  // Upgrade: h2c without `Connection: upgrade` is an ordinary request: the upgrade headers are dropped.
  t.equal((await send(gw.url, '/public/x', { headers: { upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' } })).status, 200);
  const plain = echo.received[0]?.headers ?? {};
  t.notOk(plain.upgrade ?? plain['http2-settings'], 'upgrade headers stripped upstream');

  // A WebSocket upgrade the upstream answers with 200: nothing is tunnelled, bytes after it are not a request.
  const ws = `GET /ws/x HTTP/1.1\r\nHost: ${host}\r\nX-API-Key: ${KEY_ALICE}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  const out = await sendRaw(gw.url, ws + `GET /admin/users HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  t.equal(statusOf(out), 200, 'the upstream answer is relayed');
  t.notMatch(out, /101 Switching/);
  t.match(out, /[Cc]onnection: close/, 'and the connection is closed');
  t.same(echo.received.slice(1).map((r) => r.url), ['/ws/x'], 'the upstream saw only the upgrade request, never /admin/users');
  t.equal(echo.received[1]?.headers['x-auth-user'], 'alice');
});

t.test('91 CRLF in values the gateway writes upstream', async (t) => {
  const { gw, echo } = await startThreatGateway(t);
  const attempts = [
    basic('alice%0d%0aX-Auth-Groups: admin', 'x'),
    basic('alice\r\nX-Auth-Groups: admin', 'x'),
    basic('alice\nX-Auth-Groups: admin', 'x'),
    basic('alice\u2028x', 'x'),
    `Basic ${Buffer.from('alice:x\r\nX-Auth-Groups: admin').toString('base64')}`,
  ];
  for (const authorization of attempts) {
    const r = await send(gw.url, '/basic/x', { headers: { authorization } });
    t.equal(r.status, 401, JSON.stringify(authorization));
    t.notMatch(r.body, /X-Auth-Groups|alice/, 'the claim is not echoed');
  }
  t.equal(echo.received.length, 0, 'NF');
});

t.test('Expect: 100-continue uploads (DEPS "Known failure") reach a protected upstream intact', async (t) => {
  const got: { sha: string; length: number; expect: string | undefined; user: string | undefined }[] = [];
  const upstream = createServer((req, res) => {
    const h = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => { h.update(c); length += c.length; });
    req.on('end', () => {
      got.push({ sha: h.digest('hex'), length, expect: req.headers.expect, user: req.headers['x-auth-user'] as string | undefined });
      res.end('stored');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { upstream.closeAllConnections(); upstream.close(() => r()); }));
  const { gw } = await startThreatGateway(t, { upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` });
  const payload = randomBytes(2 * 1024 * 1024);
  const u = new URL(gw.url);
  const upload = (headers: Record<string, string>) => new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/api/upload', headers: { expect: '100-continue', 'content-type': 'application/octet-stream', 'content-length': String(payload.length), ...headers } });
    req.on('continue', () => { continued = true; req.end(payload); });
    req.on('response', (res) => { res.resume(); res.on('end', () => resolve({ status: res.statusCode ?? 0, continued })); if (!continued) req.destroy(); });
    req.on('error', (err) => (continued ? reject(err) : resolve({ status: 0, continued })));
  });
  const ok = await upload({ 'x-api-key': KEY_ALICE });
  t.equal(ok.status, 200);
  t.ok(ok.continued, 'the client was told to continue');
  t.equal(got.length, 1);
  t.equal(got[0]?.length, payload.length);
  t.equal(got[0]?.sha, createHash('sha256').update(payload).digest('hex'), 'byte for byte');
  t.notOk(got[0]?.expect, 'Expect is not forwarded');
  t.equal(got[0]?.user, 'alice');
  const refused = await upload({ 'x-api-key': 'wrong' });
  t.ok(refused.status === 401 || refused.status === 0, `a refused upload is 401 (${refused.status})`);
  t.equal(got.length, 1, 'NF');
});
