// Request log lines are gathered before they reach stdout (issue 12): nothing recorded is lost
// when the process is stopped with SIGTERM right after the last response.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { request } from 'undici';
import { stringify } from 'yaml';
import { makeTempDir, startTestEcho, waitFor } from '../helpers/gateway.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

t.test('every request line is on stdout after SIGTERM', async (t) => {
  const echo = await startTestEcho(t);
  const dir = makeTempDir(t);
  const file = path.join(dir, 'authgate.yaml');
  writeFileSync(file, stringify({
    server: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, drainTimeout: '5s' },
    store: { driver: 'memory' },
    routes: [{ name: 'logged', match: { path: '/logged/**' }, upstream: echo.url, auth: 'anonymous' }],
  }));
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info' };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/cli/fixtures/run-cli.ts'), 'start', '--config', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.ok(await waitFor(() => /"url":"http:\/\/127\.0\.0\.1:\d+"/.test(out), 20_000), 'started');
  const base = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1] as string;

  const n = 300;
  for (let i = 0; i < n; i += 30) {
    await Promise.all(Array.from({ length: 30 }, async (_, j) => {
      const r = await request(`${base}/logged/${i + j}?secret=not-logged`);
      await r.body.dump();
      t.equal(r.statusCode, 200);
    }));
  }
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0');
  const lines = out.split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l) as { route: string; path: string; status: number });
  t.equal(lines.filter((l) => l.route === 'logged' && l.status === 200).length, n, `all ${n} request lines were written`);
  t.same(new Set(lines.map((l) => Number(l.path.split('/')[2]))).size, n, 'one per request');
  t.notMatch(out, /not-logged/, 'the query string is not logged');
});
