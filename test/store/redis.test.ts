import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { StoreUnavailableError } from '../../src/errors.js';
import { RESYNC_CHANNEL } from '../../src/store/types.js';
import { createStore } from '../../src/store/index.js';
import { RedisStore } from '../../src/store/redis.js';
import { deleteRedisKeys } from '../helpers/redis.js';
import { callEveryMethod, captureLog, rejectionOf, storeContract, waitFor } from './contract.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

/** A unique key prefix on the shared Redis, with its keys deleted at teardown. */
function testPrefix(t: Test): string {
  const prefix = `test:${randomUUID()}:`;
  t.teardown(() => deleteRedisKeys(prefix, REDIS_URL));
  return prefix;
}

async function openStore(t: Test, keyPrefix: string, url = REDIS_URL, log = captureLog()): Promise<RedisStore> {
  const store = new RedisStore({ url, keyPrefix, log });
  t.teardown(() => store.close());
  await store.connected();
  return store;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const hasRedisServer = spawnSync('redis-server', ['--version']).error === undefined;

/** A throwaway redis-server on `port` (no persistence), stopped at teardown. */
async function startRedisServer(t: Test, port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  t.teardown(() => stopRedisServer(child));
  if (!(await waitFor(() => accepts(port), 5000, 20))) throw new Error('redis-server did not start');
  return child;
}

async function stopRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGCONT');
  child.kill('SIGKILL');
  await exited;
}

t.test('redis store contract', async (t) => {
  storeContract(t, {
    async open(t) {
      const prefix = testPrefix(t);
      return { store: await openStore(t, prefix), peer: () => openStore(t, prefix) };
    },
  });
});

t.test('keys and channels carry the prefix; index keys expire with their last member', async (t) => {
  const p1 = testPrefix(t);
  const p2 = testPrefix(t);
  const a = await openStore(t, p1);
  const b = await openStore(t, p2);
  const b2 = await openStore(t, p2);
  const raw = new Redis(REDIS_URL);
  t.teardown(() => raw.quit());

  await a.set('k', 'v');
  t.equal(await raw.get(`${p1}k`), 'v', 'stored under the prefix');
  t.equal(await b.get('k'), null, 'another prefix does not see it');

  await a.indexAdd('idx', 'm1', 5_000);
  const left = await raw.pttl(`${p1}__index:idx`);
  t.ok(left > 0 && left <= 5_000, `index key expires with its members (${left} ms)`);
  await a.indexAdd('idx', 'm2');
  t.equal(await raw.pttl(`${p1}__index:idx`), -1, 'a member without TTL keeps the index');

  const atB: string[] = [];
  b.subscribe('ch', (m) => atB.push(m));
  t.ok(
    await waitFor(async () => {
      await b2.publish('ch', 'ready?');
      return waitFor(() => atB.includes('ready?'), 200);
    }),
    'subscribed',
  );
  await a.publish('ch', 'from-other-prefix');
  await raw.publish(`${p2}ch`, 'foreign format');
  await b2.publish('ch', 'marker');
  t.ok(await waitFor(() => atB.includes('marker'), 1000));
  t.notOk(atB.includes('from-other-prefix'), 'channels are prefixed too');
  t.ok(atB.includes('foreign format'), 'a message without a sender id is delivered as is');
});

t.test('unreachable redis: every method fails fast with StoreUnavailableError', async (t) => {
  const port = await freePort();
  const log = captureLog();
  const started = Date.now();
  const store = await openStore(t, 'unused:', `redis://127.0.0.1:${port}`, log);
  t.ok(Date.now() - started < 3000, 'opening does not hang');
  for (const { name, err, ms } of await callEveryMethod(store)) {
    t.ok(err instanceof StoreUnavailableError, `${name} rejects with StoreUnavailableError`);
    t.ok(ms < 3000, `${name} settles in ${ms} ms`);
  }
  const off = store.subscribe('ch', () => {});
  off();
  t.equal(log.lines.filter((l) => l.msg === 'redis store unavailable').length, 1, 'outage logged once');
  t.notOk(JSON.stringify(log.lines).includes('redis://'), 'no URL in logs');

  const viaFactory = await createStore({ driver: 'redis', redis: { url: `redis://127.0.0.1:${port}` } }, { configDir: '/', log: captureLog() });
  t.teardown(() => viaFactory.close());
  t.ok((await rejectionOf(viaFactory.ping())) instanceof StoreUnavailableError, 'createStore returns a store whose ping fails');
});

t.test('redis that stalls, goes away and comes back: fail closed, then resume without restart', { skip: hasRedisServer ? false : 'redis-server is not on PATH' }, async (t) => {
  const port = await freePort();
  let server = await startRedisServer(t, port);
  const url = `redis://127.0.0.1:${port}`;
  const log = captureLog();
  const store = await openStore(t, 'resume:', url, log);
  const peer = await openStore(t, 'resume:', url);
  const got: string[] = [];
  store.subscribe('inv', (m) => got.push(m));
  let resyncs = 0;
  store.subscribe(RESYNC_CHANNEL, () => resyncs++);
  await store.set('k', 'v');
  t.equal(await store.get('k'), 'v');

  // A stalled server: commands time out instead of hanging.
  server.kill('SIGSTOP');
  let started = Date.now();
  const stalled = await rejectionOf(store.get('k'));
  t.ok(stalled instanceof StoreUnavailableError, 'a stalled server fails closed');
  t.ok(Date.now() - started < 3000, `within the command timeout (${Date.now() - started} ms)`);
  server.kill('SIGCONT');
  t.ok(await waitFor(async () => (await rejectionOf(store.get('k'))) === undefined, 10_000, 50), 'works again after the stall');

  // The server dies.
  const resyncsBeforeOutage = resyncs;
  await stopRedisServer(server);
  t.ok(await waitFor(async () => (await rejectionOf(store.get('k'))) instanceof StoreUnavailableError, 3000), 'down: fails closed');
  started = Date.now();
  t.ok((await rejectionOf(store.set('k', 'w'))) instanceof StoreUnavailableError);
  t.ok((await rejectionOf(store.ping())) instanceof StoreUnavailableError, 'ping fails (readiness)');
  t.ok(Date.now() - started < 3000, 'and fails fast');

  // It comes back (empty: no persistence); the same store object resumes.
  server = await startRedisServer(t, port);
  t.ok(await waitFor(async () => (await rejectionOf(store.set('k', 'back'))) === undefined, 10_000, 50), 'resumes when redis returns');
  t.equal(await store.get('k'), 'back');
  await store.ping();
  t.ok(
    await waitFor(async () => {
      await rejectionOf(peer.publish('inv', 'after-outage'));
      return waitFor(() => got.includes('after-outage'), 200);
    }, 10_000, 0),
    'subscriptions are restored after reconnecting',
  );
  t.ok(resyncs > resyncsBeforeOutage, 'subscribers are told that messages may have been missed (store:resync)');
  t.equal(log.lines.filter((l) => l.msg === 'redis store unavailable').length, 1, 'the outage is logged once, not per attempt');
  t.ok(log.lines.some((l) => l.msg === 'redis store available again'), 'recovery logged');
});

t.test('createStore redis reads a { file } url and applies the prefix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-redis-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'redis-url'), `${REDIS_URL}\n`);
  const keyPrefix = testPrefix(t);
  const store = await createStore({ driver: 'redis', redis: { url: { file: 'redis-url' }, keyPrefix } }, { configDir: dir, log: captureLog() });
  t.teardown(() => store.close());
  t.equal(store.driver, 'redis');
  await store.ping();
  await store.set('x', 'y');
  const raw = new Redis(REDIS_URL);
  t.teardown(() => raw.quit());
  t.equal(await raw.get(`${keyPrefix}x`), 'y');
});
