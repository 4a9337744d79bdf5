// server.workers: 2 through the real CLI (`authgate start`). Each worker keeps its own caches; a
// revoked API token and a logged-out session must fail on BOTH workers within 1 s (SPEC 4, 8),
// which only holds if the invalidation crosses processes (SQLite: the events table each process
// polls). Which worker answered is read from its request log line (`worker` binding).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { stringify } from 'yaml';
import { startEcho } from '../../src/demo/echo.js';
import { resolveWorkers } from '../../src/cluster.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const PASSWORD = 'cluster-test-password';

interface LogLine {
  msg?: string;
  worker?: number;
  route?: string;
  path?: string;
  status?: number;
  url?: string;
  [k: string]: unknown;
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on a new connection, so the cluster's round-robin hands it to the next worker. */
function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', agent: false, headers: { connection: 'close', ...opts.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('resolveWorkers: default 1, a number, auto = CPUs', async (t) => {
  t.equal(resolveWorkers(undefined), 1);
  t.equal(resolveWorkers(3), 3);
  t.equal(resolveWorkers('auto', () => 4), 4);
  t.equal(resolveWorkers('auto', () => 0), 1);
});

t.test('workers: 2 via the CLI — revocations and logouts reach both workers within 1 s', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'authgate-cluster-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const echo = await startEcho('127.0.0.1', 0, { record: false });
  t.teardown(() => echo.close());
  writeFileSync(path.join(dir, 'users.yaml'), stringify({ users: { alice: { email: 'alice@example.com', password: bcrypt.hashSync(PASSWORD, 4), groups: ['staff'] } } }));
  const config = {
    server: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, workers: 2, logLevel: 'info', drainTimeout: '2s' },
    secrets: { session: randomBytes(32).toString('base64url') },
    store: { driver: 'sqlite', sqlite: { path: './state.db' } },
    users: { file: './users.yaml' },
    signing: { keys: [{ kid: 'k1', alg: 'EdDSA', privateKey: { file: './k1.pem' } }] },
    authenticators: { 'api-token': { type: 'token' }, web: { type: 'session' } },
    routes: [
      { name: 'tok', match: { path: '/tok/**' }, upstream: echo.url, auth: ['api-token'] },
      { name: 'web', match: { path: '/web/**' }, upstream: echo.url, auth: ['web'] },
    ],
  };
  const configFile = path.join(dir, 'authgate.yaml');
  writeFileSync(configFile, stringify(config));

  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.LOG_LEVEL;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/cli/fixtures/run-cli.ts'), 'start', '--config', configFile], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const logs: LogLine[] = [];
  let stderr = '';
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        /* not a log line */
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));

  // Both workers listen on the same (shared) port; the primary reports when both are up.
  const listening = await until(
    'the cluster to start',
    () => {
      if (child.exitCode !== null) throw new Error(`authgate exited: ${stderr}`);
      const up = logs.filter((l) => l.msg === 'authgate listening');
      return logs.some((l) => l.msg === 'authgate cluster started') && up.length >= 2 ? up : undefined;
    },
    90_000,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\nstderr: ${stderr}\nlog: ${logs.map((l) => JSON.stringify(l)).join('\n')}`);
  });
  const workerIds = [...new Set(listening.map((l) => l.worker))];
  t.same(workerIds.sort(), [1, 2], 'two workers, each logging with its id');
  t.equal(new Set(listening.map((l) => l.url)).size, 1, 'one shared public URL');
  const base = listening[0]?.url as string;
  const origin = base;

  // Which worker answered a path, from its request log line.
  const workerFor = (p: string): Promise<number> =>
    until(`the log line of ${p}`, () => logs.find((l) => l.msg === 'request' && l.path === p)?.worker, 10_000);

  const login = await send(`${base}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin }, body: JSON.stringify({ username: 'alice', password: PASSWORD }) });
  t.equal(login.status, 200, 'signed in');
  const setCookie = ([] as string[]).concat(login.headers['set-cookie'] ?? []);
  const cookie = setCookie.map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('authgate_session=')) as string;
  t.ok(cookie, 'session cookie');
  const created = await send(`${base}/.auth/tokens`, { method: 'POST', headers: { 'content-type': 'application/json', origin, cookie }, body: JSON.stringify({ name: 'cluster' }) });
  t.equal(created.status, 201, 'token created', { body: created.body });
  const { id: tokenId, token } = JSON.parse(created.body) as { id: string; token: string };

  let n = 0;
  /** Requests on new connections until each worker has answered `want` at least once. */
  async function warmBoth(prefix: string, headers: Record<string, string>): Promise<void> {
    const seen = new Set<number>();
    for (let i = 0; i < 60 && seen.size < 2; i++) {
      const p = `${prefix}${++n}`;
      const r = await send(base + p, { headers });
      if (r.status !== 200) throw new Error(`${p}: expected 200, got ${r.status} ${r.body}`);
      seen.add(await workerFor(p));
    }
    if (seen.size < 2) throw new Error(`${prefix}: only worker(s) ${[...seen].join(',')} answered`);
  }

  /**
   * After the revocation at t0, keep asking on new connections for 1.5 s. Every request sent
   * 1 s or more after t0 must be refused, and both workers must have answered some of those.
   */
  async function refusedOnBothWithinOneSecond(prefix: string, headers: Record<string, string>, t0: number): Promise<void> {
    const sent: { p: string; at: number; status: number }[] = [];
    while (Date.now() - t0 < 1500) {
      const p = `${prefix}${++n}`;
      const at = Date.now() - t0;
      const r = await send(base + p, { headers });
      sent.push({ p, at, status: r.status });
    }
    const byWorker = new Map<number, { lastOk: number; lateRefusals: number; lateOk: number }>();
    for (const s of sent) {
      const w = await workerFor(s.p);
      const e = byWorker.get(w) ?? { lastOk: -1, lateRefusals: 0, lateOk: 0 };
      if (s.status === 200) e.lastOk = Math.max(e.lastOk, s.at);
      if (s.at >= 1000) {
        if (s.status === 401) e.lateRefusals++;
        else e.lateOk++;
      }
      byWorker.set(w, e);
    }
    for (const w of [1, 2]) {
      const e = byWorker.get(w);
      t.ok(e && e.lateRefusals > 0, `${prefix}: worker ${w} refused requests sent >= 1 s after the revocation`);
      t.equal(e?.lateOk ?? 0, 0, `${prefix}: worker ${w} let nothing through >= 1 s after the revocation`);
      t.comment(`${prefix}: worker ${w}: last 200 for a request sent ${e?.lastOk ?? -1} ms after the revocation (-1: none)`);
    }
  }

  // API token: warm on both workers, revoke through one, refused by both.
  const tokenHeaders = { authorization: `Token ${token}` };
  await warmBoth('/tok/', tokenHeaders);
  const revoke = await send(`${base}/.auth/tokens/${tokenId}`, { method: 'DELETE', headers: { origin, cookie } });
  const tokenRevokedAt = Date.now();
  t.equal(revoke.status, 204, 'token revoked');
  await refusedOnBothWithinOneSecond('/tok/', tokenHeaders, tokenRevokedAt);

  // Session: warm on both workers, log out through one, refused by both.
  await warmBoth('/web/', { cookie });
  const logout = await send(`${base}/.auth/logout`, { method: 'POST', headers: { origin, cookie, accept: 'application/json', 'content-type': 'application/json' }, body: '{}' });
  const loggedOutAt = Date.now();
  t.equal(logout.status, 204, 'logged out');
  await refusedOnBothWithinOneSecond('/web/', { cookie }, loggedOutAt);

  // /metrics (SPEC 7): whichever worker takes the scrape answers for both workers together.
  const adminUrl = listening[0]?.admin as string;
  const tokLines = () => logs.filter((l) => l.msg === 'request' && typeof l.path === 'string' && l.path.startsWith('/tok/'));
  const perWorker = [1, 2].map((w) => tokLines().filter((l) => l.worker === w).length);
  t.ok(perWorker.every((c) => c > 0), `both workers served /tok/ requests (${perWorker.join(' + ')})`);
  const tokTotal = (text: string): number =>
    text
      .split('\n')
      .filter((line) => line.startsWith('authgate_requests_total{') && line.includes('route="tok"'))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  const scrape = async (): Promise<string> => {
    const r = await send(`${adminUrl}/metrics`);
    if (r.status !== 200) throw new Error(`/metrics: ${r.status} ${r.body}`);
    return r.body;
  };
  let lastText = '';
  const expected = tokLines().length;
  const deadline = Date.now() + 10_000;
  while (tokTotal((lastText = await scrape())) !== expected && Date.now() < deadline) await sleep(50);
  t.equal(tokTotal(lastText), expected, `/metrics counts the /tok/ requests of both workers (${expected})`);
  for (let i = 0; i < 4; i++) t.equal(tokTotal(await scrape()), expected, `scrape ${i + 1} on a new connection: same total, whichever worker answered`);
  t.equal(lastText.split('\n').filter((l) => l === '# TYPE authgate_requests_total counter').length, 1, 'one series family, not one per worker');
  t.match(lastText, /authgate_upstream_latency_seconds_count\{route="tok"\} \d+/, 'histograms are aggregated too');

  // SIGTERM: the primary drains every worker and exits 0.
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'the cluster stops cleanly on SIGTERM');
  t.ok(logs.some((l) => l.msg === 'authgate cluster stopped'), 'primary reported the stop');
});
