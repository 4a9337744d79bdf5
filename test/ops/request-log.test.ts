// The request line is serialised by hand (src/ops/request-log.ts) into the logger's destination:
// it must parse as the same object pino writes for the same fields, whatever the strings hold.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import pino from 'pino';
import { Metrics } from '../../src/ops/metrics.js';
import { createRequestLogger, type RequestLine } from '../../src/ops/request-log.js';

function capture(level: string, bindings: Record<string, unknown> = {}): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const dest = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString().split('\n').filter((l) => l !== '')); cb(); } });
  const log = pino({ level, base: { service: 'authgate' } }, dest).child(bindings);
  return { log, lines };
}

const tricky = ['plain', 'quote " and \\ backslash', 'new\nline\ttab\u0000nul', 'ünïcödé ✓ 🚀', 'lone \ud800 surrogate', '</script>', ''];

t.test('each line parses to what pino writes for the same fields', async (t) => {
  for (const s of tricky) {
    const ours = capture('info', { worker: 2 });
    const theirs = capture('info', { worker: 2 });
    const line: RequestLine = { method: 'GET', path: `/p/${s}`, route: s, authenticator: s, user: s, status: 200, ms: 1.23456, ip: '127.0.0.1' };
    const requestLog = createRequestLogger(ours.log, new Metrics());
    requestLog({ ...line });
    requestLog.flush();
    theirs.log.info({ ...line, ms: 1.23 }, 'request');
    await new Promise((r) => setImmediate(r));
    t.equal(ours.lines.length, 1, `one line for ${JSON.stringify(s)}`);
    const a = JSON.parse(ours.lines[0] as string) as Record<string, unknown>;
    const b = JSON.parse(theirs.lines[0] as string) as Record<string, unknown>;
    delete a.time; delete b.time;
    if (s.includes('\ud800')) {
      // pino writes a lone surrogate raw (it becomes U+FFFD on the way out); ours keeps it, escaped.
      t.match(ours.lines[0], /lone \\ud800 surrogate/);
      t.equal(a.user, s);
      continue;
    }
    t.same(a, b, `same object for ${JSON.stringify(s)}`);
  }
});

t.test('absent fields are left out, long paths are cut, time is epoch ms', async (t) => {
  const { log, lines } = capture('info');
  const before = Date.now();
  const requestLog = createRequestLogger(log, new Metrics());
  requestLog({ method: 'POST', path: '/x'.repeat(400), route: '-', authenticator: undefined, user: undefined, status: 404, ms: 0.5, ip: undefined });
  await new Promise((r) => setImmediate(r));
  const o = JSON.parse(lines[0] as string) as Record<string, unknown>;
  t.notOk('user' in o);
  t.notOk('authenticator' in o);
  t.notOk('ip' in o);
  t.equal((o.path as string).length, 512);
  t.equal(o.level, 30);
  t.equal(o.msg, 'request');
  t.ok((o.time as number) >= before && (o.time as number) <= Date.now() + 1);
});

t.test('at warn nothing is written, but the request is counted', async (t) => {
  const { log, lines } = capture('warn');
  const metrics = new Metrics();
  const requestLog = createRequestLogger(log, metrics);
  requestLog({ method: 'GET', path: '/', route: 'r', authenticator: undefined, user: undefined, status: 200, ms: 1, ip: undefined });
  t.notOk(requestLog.lineWanted());
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 0);
  t.equal(metrics.requests.get('r', 'GET', '200'), 1);
  log.level = 'info';
  t.ok(requestLog.lineWanted(), 'a level change applies at once');
});

/** A logger on a file destination written synchronously, as in production (ops/logger.ts), and its file's lines. */
function fileLogger(t: Test): { log: pino.Logger; dest: pino.DestinationStream & { flushSync(): void; on(event: string, fn: () => void): unknown }; read(): string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-reqlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'log');
  const dest = pino.destination({ dest: file, sync: true, mkdir: true }) as pino.DestinationStream & { flushSync(): void; on(event: string, fn: () => void): unknown };
  return { log: pino({ level: 'info' }, dest), dest, read: () => { try { return readFileSync(file, 'utf8').split('\n').filter((l) => l !== ''); } catch { return []; } } };
}

t.test('on a file destination lines are gathered into chunks, in order, and written by flush', async (t) => {
  const { log, dest, read } = fileLogger(t);
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const requestLog = createRequestLogger(log, new Metrics());
  for (let i = 0; i < 500; i++) requestLog({ method: 'GET', path: `/n/${i}`, route: 'r', authenticator: undefined, user: undefined, status: 200, ms: 1, ip: '127.0.0.1' });
  dest.flushSync();
  const sofar = read().length;
  t.ok(sofar > 0 && sofar < 500, `full chunks go out at once, the rest waits (${sofar} of 500 so far)`);
  requestLog.flush();
  dest.flushSync();
  t.same(read().map((l) => (JSON.parse(l) as { path: string }).path), Array.from({ length: 500 }, (_, i) => `/n/${i}`));
});

t.test('a gathered line is written within the flush interval', async (t) => {
  const { log, dest, read } = fileLogger(t);
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const requestLog = createRequestLogger(log, new Metrics());
  requestLog({ method: 'GET', path: '/one', route: 'r', authenticator: undefined, user: undefined, status: 200, ms: 1, ip: undefined });
  dest.flushSync();
  t.equal(read().length, 0, 'gathered, not yet handed over');
  const deadline = Date.now() + 5000;
  while (read().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(read().length, 1);
  requestLog.flush();
});

t.test('durations are written as pino writes Math.round(ms * 100) / 100', async (t) => {
  const values = [0, 0.004, 0.005, 0.01, 0.1, 0.5, 1, 1.05, 1.5, 9.99, 9.995, 12.3456, 100, 1234.5, 2 ** 30 / 100 - 0.01, 2 ** 30 / 100, 1e9, 86_400_000.123, -1, -0.001];
  const { log, lines } = capture('info');
  const requestLog = createRequestLogger(log, new Metrics());
  for (const ms of values) requestLog({ method: 'GET', path: '/', route: 'r', authenticator: undefined, user: undefined, status: 200, ms, ip: undefined });
  await new Promise((r) => setImmediate(r));
  t.same(lines.map((l) => (JSON.parse(l) as { ms: number }).ms), values.map((ms) => Math.round(ms * 100) / 100));
  // Not a number: still a JSON line, with what pino writes for it.
  for (const ms of [Number.NaN, Number.POSITIVE_INFINITY]) requestLog({ method: 'GET', path: '/', route: 'r', authenticator: undefined, user: undefined, status: 200, ms, ip: undefined });
  await new Promise((r) => setImmediate(r));
  t.same(lines.slice(values.length).map((l) => (JSON.parse(l) as { ms: unknown }).ms), [null, null]);
});

t.test('the query string is cut off and never written; status and time are numbers', async (t) => {
  const { log, lines } = capture('info');
  const requestLog = createRequestLogger(log, new Metrics());
  const before = Date.now();
  requestLog.record('GET', '/login/callback?code=s3cret-code&state=s3cret-state', 'r', 'oidc', 'alice', 302, 3.2, '10.0.0.1');
  requestLog.record('GET', '?only=s3cret-query', 'r', undefined, undefined, 599, 0, undefined);
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 2);
  t.notMatch(lines.join('\n'), /s3cret/);
  const [a, b] = lines.map((l) => JSON.parse(l) as { path: string; status: number; time: number; user?: string });
  t.equal(a?.path, '/login/callback');
  t.equal(a?.status, 302);
  t.equal(a?.user, 'alice');
  t.equal(b?.path, '');
  t.equal(b?.status, 599);
  t.ok((a?.time ?? 0) >= before && (a?.time ?? 0) <= Date.now());
});

t.test('a line longer than the gathering buffer is written whole, between its neighbours', async (t) => {
  const { log, dest, read } = fileLogger(t);
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const requestLog = createRequestLogger(log, new Metrics());
  const long = `u${'\u0001é'.repeat(40_000)}`; // 6 bytes a control character once escaped
  requestLog.record('GET', '/before', 'r', undefined, 'a', 200, 1, undefined);
  requestLog.record('GET', '/long', 'r', undefined, long, 200, 1, undefined);
  requestLog.record('GET', '/after', 'r', undefined, 'b', 200, 1, undefined);
  requestLog.flush();
  dest.flushSync();
  const got = read().map((l) => JSON.parse(l) as { path: string; user: string });
  t.same(got.map((l) => l.path), ['/before', '/long', '/after']);
  t.equal(got[1]?.user, long);
});

t.test('after the logger is flushed for close, a late line is written at once', async (t) => {
  const { log, dest, read } = fileLogger(t);
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const requestLog = createRequestLogger(log, new Metrics());
  requestLog.record('GET', '/early', 'r', undefined, undefined, 200, 1, undefined);
  dest.flushSync();
  t.equal(read().length, 0, 'gathered while open');
  requestLog.flush();
  requestLog.record('GET', '/late', 'r', undefined, undefined, 200, 1, undefined);
  dest.flushSync();
  t.same(read().map((l) => (JSON.parse(l) as { path: string }).path), ['/early', '/late'], 'the in-flight request finishing after close is not left to a timer');
});

t.test('timestamps of any width are written digit for digit', async (t) => {
  const { log, lines } = capture('info');
  const requestLog = createRequestLogger(log, new Metrics());
  const times = [0, 7, 999_999_999, 1_000_000_000, 1_000_000_001, 999_999_999_999, 1_000_000_000_000, 1_733_000_000_123, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1];
  const realNow = Date.now;
  t.teardown(() => { Date.now = realNow; });
  for (const time of times) {
    Date.now = () => time;
    requestLog({ method: 'GET', path: '/t', route: 'r', authenticator: undefined, user: undefined, status: 200, ms: 1, ip: undefined });
  }
  Date.now = realNow;
  await new Promise((r) => setImmediate(r));
  t.same(lines.map((l) => (JSON.parse(l) as { time: number }).time), times);
  t.ok(lines.every((l, i) => l.includes(`"time":${times[i]},`)), 'no padding, no exponent');
});

t.test('constant runs are shared per method, route and authenticator, and stay right past the cache bound', async (t) => {
  const { log, lines } = capture('info', { worker: 1 });
  const requestLog = createRequestLogger(log, new Metrics());
  const expected: Record<string, unknown>[] = [];
  // The same route and authenticator with and without a user, then more combinations than are kept.
  for (let i = 0; i < 5000; i++) {
    const route = i < 4 ? 'api' : `route-${i}`;
    const authenticator = i % 3 === 0 ? undefined : i % 2 === 0 ? 'jwt' : `a"${i % 7}`;
    const user = i % 2 === 0 ? undefined : `u${i}`;
    const method = ['GET', 'POST', 'PUT', 'M-SEARCH'][i % 4] as string;
    requestLog({ method, path: `/p/${i}`, route, authenticator, user, status: 200 + (i % 300), ms: i / 100, ip: '10.0.0.1' });
    expected.push({ level: 30, service: 'authgate', worker: 1, method, path: `/p/${i}`, route, ...(authenticator === undefined ? {} : { authenticator }), ...(user === undefined ? {} : { user }), status: 200 + (i % 300), ms: i / 100, ip: '10.0.0.1', msg: 'request' });
  }
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, expected.length);
  let same = 0;
  for (let i = 0; i < lines.length; i++) {
    const o = JSON.parse(lines[i] as string) as Record<string, unknown>;
    delete o.time;
    if (JSON.stringify(o) === JSON.stringify(expected[i])) same++;
    else t.same(o, expected[i], `line ${i}`);
  }
  t.equal(same, expected.length, 'every line as expected, field order included');
});

t.test('written straight to a synchronous destination, request lines keep their place among the logger\'s own lines', async (t) => {
  const { log, dest, read } = fileLogger(t);
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const requestLog = createRequestLogger(log, new Metrics());
  log.info('first');
  for (let i = 0; i < 3; i++) requestLog.record('GET', `/r/${i}`, 'r', undefined, undefined, 200, 1, undefined);
  requestLog.flush();
  log.info('last');
  dest.flushSync();
  t.same(read().map((l) => (JSON.parse(l) as { msg: string; path?: string }).path ?? (JSON.parse(l) as { msg: string }).msg), ['first', '/r/0', '/r/1', '/r/2', 'last']);
});

t.test('an asynchronous destination gets the lines through its own write, after what it already holds', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-reqlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'log');
  const dest = pino.destination({ dest: file, sync: false, mkdir: true }) as pino.DestinationStream & { flushSync(): void; on(event: string, fn: () => void): unknown };
  await new Promise<void>((r) => dest.on('ready', () => r()));
  const log = pino({ level: 'info' }, dest);
  const requestLog = createRequestLogger(log, new Metrics());
  for (let i = 0; i < 50; i++) log.info(`own ${i}`);
  for (let i = 0; i < 3; i++) requestLog.record('GET', `/r/${i}`, 'r', undefined, undefined, 200, 1, undefined);
  requestLog.flush();
  dest.flushSync();
  const got = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { msg: string; path?: string }).path ?? (JSON.parse(l) as { msg: string }).msg);
  t.same(got, [...Array.from({ length: 50 }, (_, i) => `own ${i}`), '/r/0', '/r/1', '/r/2']);
});

t.test('when writing to the descriptor fails, the lines go through the destination\'s own write', async (t) => {
  const chunks: string[] = [];
  // Looks like a synchronous sonic-boom, but its descriptor is not open.
  const dest = { sync: true, fd: 2 ** 30, minLength: 0, write(chunk: string) { chunks.push(chunk); return true; }, flushSync() { /* nothing held */ } };
  const requestLog = createRequestLogger(pino({ level: 'info' }, dest), new Metrics());
  for (let i = 0; i < 3; i++) requestLog.record('GET', `/r/${i}`, 'r', undefined, undefined, 200, 1, undefined);
  requestLog.flush();
  t.same(chunks.join('').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { path: string }).path), ['/r/0', '/r/1', '/r/2']);
});
