// `authgate start` as a process: SIGHUP reloads, SIGTERM drains in-flight requests and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { request } from 'undici';
import { stringify } from 'yaml';
import { makeTempDir, startTestEcho, waitFor } from '../helpers/gateway.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function startCli(t: { teardown(fn: () => unknown): void }, configFile: string): { child: ChildProcess; url: () => string | undefined; exited: Promise<number | null>; output: () => string } {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info' };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/cli/fixtures/run-cli.ts'), 'start', '--config', configFile], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let url: string | undefined;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
    if (m) url = m[1];
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return { child, url: () => url, exited, output: () => out };
}

const config = (upstream: string, routeName: string, path: string) => ({
  server: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, drainTimeout: '5s' },
  store: { driver: 'memory' },
  routes: [{ name: routeName, match: { path }, upstream, auth: 'anonymous' }],
});

t.test('SIGHUP reloads the config file; SIGTERM drains and exits 0', async (t) => {
  const echo = await startTestEcho(t);
  let release: (() => void) | undefined;
  const slow = createServer((_req, res) => { release = () => res.end('slow done'); });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { slow.closeAllConnections(); slow.close(() => r()); }));
  const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;

  const dir = makeTempDir(t);
  const file = path.join(dir, 'authgate.yaml');
  writeFileSync(file, stringify(config(echo.url, 'first', '/first/**')));
  const gw = startCli(t, file);
  t.ok(await waitFor(() => gw.url() !== undefined, 20_000), `gateway started: ${gw.output().slice(0, 500)}`);
  const base = gw.url() as string;
  t.equal((await request(`${base}/first/x`)).statusCode, 200);

  // Editing the file alone reloads (watcher); SIGHUP reloads explicitly.
  writeFileSync(file, stringify({ ...config(echo.url, 'second', '/second/**'), routes: [...config(echo.url, 'second', '/second/**').routes, { name: 'slow', match: { path: '/slow/**' }, upstream: slowUrl, auth: 'anonymous' }] }));
  gw.child.kill('SIGHUP');
  t.ok(await waitFor(async () => (await request(`${base}/second/x`)).statusCode === 200, 10_000, 100), 'new route served after SIGHUP');
  t.equal((await request(`${base}/first/x`)).statusCode, 404, 'old route gone');

  // A broken edit keeps the running config.
  writeFileSync(file, 'routes: [ { name: nope } ]\n');
  gw.child.kill('SIGHUP');
  t.ok(await waitFor(() => /routes\.0/.test(gw.output()), 10_000), 'errors logged');
  t.equal((await request(`${base}/second/x`)).statusCode, 200, 'still serving the last good config');

  // SIGTERM while a request is in flight: it completes, then the process exits 0.
  const inflight = request(`${base}/slow/x`);
  t.ok(await waitFor(() => release !== undefined, 5000), 'slow request reached the upstream');
  gw.child.kill('SIGTERM');
  setTimeout(() => release?.(), 300);
  const res = await inflight;
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'slow done');
  t.equal(await gw.exited, 0, 'exit code 0 after draining');
});
