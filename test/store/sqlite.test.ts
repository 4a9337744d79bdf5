import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { StoreUnavailableError } from '../../src/errors.js';
import { createStore } from '../../src/store/index.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { captureLog, rejectionOf, storeContract, waitFor } from './contract.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-sqlite-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openAt(t: Test, path: string): SqliteStore {
  const store = new SqliteStore({ path, log: captureLog() });
  t.teardown(() => store.close());
  return store;
}

t.test('sqlite store contract', async (t) => {
  storeContract(t, {
    async open(t) {
      const path = join(tempDir(t), 'state.db');
      return { store: openAt(t, path), peer: async () => openAt(t, path) };
    },
  });
});

t.test('state survives closing and reopening the file', async (t) => {
  const path = join(tempDir(t), 'nested', 'dir', 'state.db');
  const first = openAt(t, path);
  await first.set('session:1', 'alice');
  await first.set('refresh:1', 'family', 60_000);
  await first.incr('lockout:alice', 60_000);
  await first.incr('lockout:alice', 60_000);
  await first.indexAdd('user:alice', 'session:1');
  await first.indexAdd('user:alice', 'token:9', 60_000);
  await first.close();

  const second = openAt(t, path);
  t.equal(await second.get('session:1'), 'alice');
  t.equal(await second.get('refresh:1'), 'family');
  const left = await second.ttl('refresh:1');
  t.ok(left > 0 && left <= 60_000, 'TTL kept across reopen');
  t.equal(await second.incr('lockout:alice', 60_000), 3, 'counter continues');
  t.same((await second.indexMembers('user:alice')).sort(), ['session:1', 'token:9']);
});

t.test('expired rows are purged; old events are pruned', async (t) => {
  const path = join(tempDir(t), 'state.db');
  const store = openAt(t, path);
  await store.set('brief', 'v', 30);
  await store.set('kept', 'v');
  await store.indexAdd('i', 'brief', 30);
  await store.indexAdd('i', 'kept');
  await store.publish('ch', 'recent');
  const raw = new Database(path);
  t.teardown(() => raw.close());
  raw.prepare('INSERT INTO events (channel, message, created_at) VALUES (?, ?, ?)').run('ch', 'ancient', Date.now() - 3_600_000);
  t.ok(await waitFor(async () => (await store.get('brief')) === null));
  t.ok(await waitFor(async () => (await store.indexMembers('i')).length === 1));
  store.purgeExpired();
  t.same(raw.prepare('SELECT key FROM kv').pluck().all(), ['kept'], 'expired value deleted');
  t.same(raw.prepare('SELECT member FROM idx').pluck().all(), ['kept'], 'expired index member deleted');
  t.same(raw.prepare('SELECT message FROM events').pluck().all(), ['recent'], 'old event pruned');
});

t.test('publish reaches a process-like peer that subscribed before, not older events', async (t) => {
  const path = join(tempDir(t), 'state.db');
  const a = openAt(t, path);
  await a.publish('ch', 'before-b-opened');
  const b = new SqliteStore({ path, log: captureLog(), pollIntervalMs: 20 });
  t.teardown(() => b.close());
  const got: string[] = [];
  b.subscribe('ch', (m) => got.push(m));
  await a.publish('ch', 'after');
  t.ok(await waitFor(() => got.length > 0, 1000));
  t.same(got, ['after'], 'no replay of events published before the instance opened');
});

t.test('a broken database fails closed with StoreUnavailableError and is logged once', async (t) => {
  const path = join(tempDir(t), 'state.db');
  const log = captureLog();
  const store = new SqliteStore({ path, log });
  t.teardown(() => store.close());
  await store.set('k', 'v');
  // Another connection holds the write lock longer than busy_timeout: writes fail, reads go on.
  const other = new Database(path);
  t.teardown(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  const started = Date.now();
  const err = await rejectionOf(store.set('k', 'w'));
  t.ok(err instanceof StoreUnavailableError, 'write rejects with StoreUnavailableError');
  t.ok(Date.now() - started < 3000, 'within busy_timeout, no hang');
  t.ok(err instanceof StoreUnavailableError && err.cause instanceof Error, 'cause kept for logs');
  t.ok((await rejectionOf(store.incr('c', 1000))) instanceof StoreUnavailableError);
  t.equal(await store.get('k'), 'v', 'reads still work under WAL');
  t.equal(log.lines.filter((l) => l.msg === 'sqlite store unavailable').length, 1, 'outage logged once');
  other.exec('COMMIT');
  await store.set('k', 'w');
  t.equal(await store.get('k'), 'w', 'resumes');
  t.ok(log.lines.some((l) => l.msg === 'sqlite store available again'));
});

t.test('createStore defaults to sqlite under ./data relative to the config directory', async (t) => {
  const configDir = tempDir(t);
  const store = await createStore(undefined, { configDir, log: captureLog() });
  t.teardown(() => store.close());
  t.equal(store.driver, 'sqlite');
  await store.set('a', 'b');
  t.ok(existsSync(join(configDir, 'data', 'authgate.db')), 'data/authgate.db created');
  const custom = await createStore({ driver: 'sqlite', sqlite: { path: 'state/x.db' } }, { configDir, log: captureLog() });
  t.teardown(() => custom.close());
  t.ok(existsSync(join(configDir, 'state', 'x.db')));
  const raw = new Database(join(configDir, 'data', 'authgate.db'));
  t.teardown(() => raw.close());
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal', 'WAL mode');
});
