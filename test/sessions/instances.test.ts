// Sessions across gateway instances and stores (SPEC 8; THREATS 32, 36): two instances on one
// Redis, a Redis outage, and a restart on SQLite.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import t from 'tap';
import { Redis } from 'ioredis';
import { deleteRedisKeys } from '../helpers/redis.js';
import { makeTempDir, startTestEcho, startTestGateway, waitFor, type Teardown } from '../helpers/gateway.js';
import { call, me, signIn, usersFile } from './_browser.js';

async function routes(t: Teardown) {
  const echo = await startTestEcho(t);
  return {
    echo,
    config: {
      users: { file: './users.yaml' },
      authenticators: { web: { type: 'session' } },
      routes: [
        { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'] },
        { name: 'public', match: { path: '/public/**' }, upstream: echo.url, auth: 'anonymous' },
      ],
    },
  };
}


t.test('two instances on one Redis: a session from A works on B; logout on A fails on B within 1 s', async (t) => {
  const url = 'redis://127.0.0.1:6379/0';
  const keyPrefix = `test:${randomUUID()}:`;
  t.teardown(() => deleteRedisKeys(keyPrefix, url));
  const { config } = await routes(t);
  // No secrets.session: both instances must agree on the one generated in the store.
  const full = { ...config, store: { driver: 'redis', redis: { url, keyPrefix } } };
  const files = { 'users.yaml': await usersFile() };
  const a = await startTestGateway(t, full, { files });
  const b = await startTestGateway(t, full, { files });
  const cookie = await signIn(a.url);
  t.equal((await me(b.url, cookie)).json().user, 'alice', 'made on A, accepted by B');
  t.equal((await call(`${b.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status, 200, 'and B has it cached now');

  const out = await call(`${a.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(out.status, 204);
  const loggedOutAt = Date.now();
  t.ok(await waitFor(async () => (await call(`${b.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status === 401, 1000, 10), 'B refuses it within 1 s');
  t.ok(Date.now() - loggedOutAt <= 1000);
  t.equal((await me(a.url, cookie)).status, 401);
  const r = new Redis(url);
  t.teardown(() => r.disconnect());
  t.same(await r.keys(`${keyPrefix}session:*`), [], 'nothing of it left in Redis');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(t: Teardown, port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // refused until the server is up
  const up = await waitFor(async () => {
    try {
      if (probe.status !== 'ready') await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      probe.disconnect();
      return false;
    }
  }, 10_000, 50);
  probe.disconnect();
  if (!up) throw new Error('redis-server did not start');
  return child;
}

t.test('THREATS 36: Redis down → 503 for sessions (even cached ones), public routes still served', async (t) => {
  const port = await freePort();
  let redis = await startRedis(t, port);
  const { config, echo } = await routes(t);
  const gw = await startTestGateway(t, { ...config, store: { driver: 'redis', redis: { url: `redis://127.0.0.1:${port}/0`, keyPrefix: 'ag:' } } }, { files: { 'users.yaml': await usersFile() } });
  const cookie = await signIn(gw.url);
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status, 200);

  const exited = new Promise((r) => redis.once('exit', r));
  redis.kill('SIGKILL');
  await exited;
  const killedAt = Date.now();
  const down = await waitFor(async () => (await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } })).status === 503, 5000, 20);
  t.ok(down, 'stateful route answers 503');
  // The cached session is trusted only until the store probe (every 1 s) sees the outage.
  t.ok(Date.now() - killedAt <= 3000, `the outage was noticed in ${Date.now() - killedAt} ms`);
  const stable = echo.received.length;
  for (let i = 0; i < 5; i++) {
    const r = await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } });
    t.equal(r.status, 503);
    t.match(r.json(), { code: 'store_unavailable' });
  }
  t.equal(echo.received.length, stable, 'never forwarded while down');
  t.equal((await me(gw.url, cookie)).status, 503);
  const login = await call(`${gw.url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-correct-horse' }) });
  t.equal(login.status, 503, 'login fails closed');
  t.equal((await call(`${gw.url}/public/x`)).status, 200, 'anonymous route still works');

  redis = await startRedis(t, port);
  let fresh = '';
  t.ok(await waitFor(async () => {
    fresh = await signIn(gw.url).catch(() => '');
    return fresh !== '';
  }, 10_000, 100), 'back without a restart');
  t.equal((await call(`${gw.url}/app/x`, { headers: { cookie: `authgate_session=${fresh}` } })).status, 200);
});

t.test('sessions survive a restart on SQLite', async (t) => {
  const dir = makeTempDir(t);
  const { config } = await routes(t);
  const full = { ...config, store: { driver: 'sqlite', sqlite: { path: './data/authgate.db' } } };
  const files = { 'users.yaml': await usersFile() };
  const first = await startTestGateway(t, full, { dir, files });
  const cookie = await signIn(first.url);
  t.equal((await me(first.url, cookie)).status, 200);
  await first.close();
  const second = await startTestGateway(t, full, { dir, files });
  t.equal((await me(second.url, cookie)).json().user, 'alice', 'same session after the restart (generated secret kept in the store)');
  const out = await call(`${second.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${cookie}` } });
  t.equal(out.status, 204);
  t.equal((await me(second.url, cookie)).status, 401);
});
