// The request line is serialised by hand (src/ops/request-log.ts) into the logger's destination:
// it must parse as the same object pino writes for the same fields, whatever the strings hold.
import { Writable } from 'node:stream';
import t from 'tap';
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
    createRequestLogger(ours.log, new Metrics())({ ...line });
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
  createRequestLogger(log, new Metrics())({ method: 'POST', path: '/x'.repeat(400), route: '-', authenticator: undefined, user: undefined, status: 404, ms: 0.5, ip: undefined });
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
