// SQLite store (SPEC 8, the default): one file, so state survives a restart, and several
// processes (node:cluster workers) can share it. Every operation is one SQL statement, which
// SQLite runs atomically across connections; better-sqlite3 is synchronous, so results are
// returned as already-settled promises. Publish goes through an `events` table that every
// instance polls, so invalidations reach the other processes on the same file.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { normalizeTtl, OutageLog, Subscribers, unavailable, type StoreLogger } from './shared.js';
import { RESYNC_CHANNEL, type Store } from './types.js';

const EVENT_POLL_MS = 200;
const EVENT_RETENTION_MS = 60_000;
const EVENT_BATCH = 500;
const PURGE_INTERVAL_MS = 30_000;
const PURGE_BATCH = 5_000;
const BUSY_TIMEOUT_MS = 2_000;
const OPEN_RETRY_MS = 10_000;

/** Runs a start-up step again while another process holds the lock (start-up only: it blocks). */
function retryWhileBusy<T>(step: () => T): T {
  const until = Date.now() + OPEN_RETRY_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    try {
      return step();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= until) throw err;
      Atomics.wait(pause, 0, 0, delay);
    }
  }
}

export interface SqliteStoreOptions {
  /** Database file; its directory is created when missing. */
  path: string;
  log: StoreLogger;
  /** How often other processes' publishes are picked up (default 200 ms). */
  pollIntervalMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS idx (
  name TEXT NOT NULL,
  member TEXT NOT NULL,
  expires_at INTEGER,
  PRIMARY KEY (name, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_expires ON idx (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`;

type EventRow = [id: number, channel: string, message: string];

export class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #log: StoreLogger;
  readonly #outage: OutageLog;
  readonly #subs: Subscribers;
  /** Ids of events this instance published and delivered locally, not yet passed by the poll. */
  readonly #ownIds = new Set<number>();
  #lastEventId: number;
  #pollFailing = false;
  readonly #pollTimer: NodeJS.Timeout;
  readonly #purgeTimer: NodeJS.Timeout;

  readonly #get: Database.Statement<[string, number], string>;
  readonly #set: Database.Statement<[string, string, number | null]>;
  readonly #setIfAbsent: Database.Statement<[string, string, number | null, number]>;
  readonly #cas: Database.Transaction<(key: string, expected: string | null, value: string, expires: number | null) => boolean>;
  readonly #take: Database.Statement<[string], [string, number | null]>;
  readonly #delete: Database.Statement<[string]>;
  readonly #incr: Database.Statement<[string, number, number | null, number, number, number, number, number | null], string>;
  readonly #ttl: Database.Statement<[string], number | null>;
  readonly #indexAdd: Database.Statement<[string, string, number | null]>;
  readonly #indexRemove: Database.Statement<[string, string]>;
  readonly #indexMembers: Database.Statement<[string, number], string>;
  readonly #insertEvent: Database.Statement<[string, string, number]>;
  readonly #readEvents: Database.Statement<[number, number], EventRow>;
  readonly #ping: Database.Statement<[], number>;
  readonly #purgeKv: Database.Statement<[number, number]>;
  readonly #purgeIdx: Database.Statement<[number, number]>;
  readonly #purgeEvents: Database.Statement<[number]>;

  constructor(opts: SqliteStoreOptions) {
    this.#log = opts.log;
    this.#outage = new OutageLog(opts.log, 'sqlite');
    this.#subs = new Subscribers((err, channel) => this.#log.error({ store: 'sqlite', channel, err: String(err) }, 'store subscriber failed'));
    mkdirSync(dirname(opts.path), { recursive: true });
    const db = new Database(opts.path);
    this.#db = db;
    try {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // Several processes opening one file at once (server.workers) can meet a lock that SQLite's
      // busy handler does not wait for (the switch to WAL, schema creation): retried for a while.
      retryWhileBusy(() => db.pragma('journal_mode = WAL'));
      db.pragma('synchronous = NORMAL');
      retryWhileBusy(() => db.exec(SCHEMA));

      this.#get = db.prepare<[string, number], string>('SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)').pluck();
      this.#set = db.prepare(
        'INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at',
      );
      // Inserts, or replaces a row that has expired; `changes` tells whether this call won.
      this.#setIfAbsent = db.prepare(
        `INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE
         SET value = excluded.value, expires_at = excluded.expires_at
         WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?`,
      );
      // IMMEDIATE (see compareAndSet): the write lock is taken before the read, so two processes
      // on one file cannot both read the old value.
      this.#cas = db.transaction((key: string, expected: string | null, value: string, expires: number | null): boolean => {
        if ((this.#get.get(key, Date.now()) ?? null) !== expected) return false;
        this.#set.run(key, value, expires);
        return true;
      });
      this.#take = db.prepare<[string], [string, number | null]>('DELETE FROM kv WHERE key = ? RETURNING value, expires_at').raw();
      this.#delete = db.prepare('DELETE FROM kv WHERE key = ?');
      // Parameters: key, by, expiresAt, now, by, by, now, expiresAt. JS numbers bind as REAL, hence the casts.
      // An expired row starts a new window; a live one keeps its expiry (fixed window).
      this.#incr = db
        .prepare<[string, number, number | null, number, number, number, number, number | null], string>(
          `INSERT INTO kv (key, value, expires_at) VALUES (?, CAST(? AS INTEGER), ?) ON CONFLICT (key) DO UPDATE SET
           value = CASE WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= ? THEN CAST(? AS INTEGER)
                        ELSE CAST(kv.value AS INTEGER) + CAST(? AS INTEGER) END,
           expires_at = CASE WHEN kv.expires_at IS NULL OR kv.expires_at <= ? THEN ? ELSE kv.expires_at END
           RETURNING value`,
        )
        .pluck();
      this.#ttl = db.prepare<[string], number | null>('SELECT expires_at FROM kv WHERE key = ?').pluck();
      this.#indexAdd = db.prepare(
        'INSERT INTO idx (name, member, expires_at) VALUES (?, ?, ?) ON CONFLICT (name, member) DO UPDATE SET expires_at = excluded.expires_at',
      );
      this.#indexRemove = db.prepare('DELETE FROM idx WHERE name = ? AND member = ?');
      this.#indexMembers = db
        .prepare<[string, number], string>('SELECT member FROM idx WHERE name = ? AND (expires_at IS NULL OR expires_at > ?)')
        .pluck();
      this.#insertEvent = db.prepare('INSERT INTO events (channel, message, created_at) VALUES (?, ?, ?)');
      this.#readEvents = db.prepare<[number, number], EventRow>('SELECT id, channel, message FROM events WHERE id > ? ORDER BY id LIMIT ?').raw();
      this.#ping = db.prepare<[], number>('SELECT count(*) FROM (SELECT 1 FROM kv LIMIT 1)').pluck();
      this.#purgeKv = db.prepare('DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at <= ? LIMIT ?)');
      this.#purgeIdx = db.prepare('DELETE FROM idx WHERE (name, member) IN (SELECT name, member FROM idx WHERE expires_at <= ? LIMIT ?)');
      this.#purgeEvents = db.prepare('DELETE FROM events WHERE created_at < ?');

      this.#lastEventId = db.prepare<[], number>('SELECT COALESCE(MAX(id), 0) FROM events').pluck().get() ?? 0;
    } catch (err) {
      db.close();
      throw err;
    }
    this.#pollTimer = setInterval(() => this.#pollEvents(), opts.pollIntervalMs ?? EVENT_POLL_MS).unref();
    this.#purgeTimer = setInterval(() => this.purgeExpired(), PURGE_INTERVAL_MS).unref();
  }

  /** Runs a statement; a SQLite failure (I/O, busy past the timeout, closed) fails closed. */
  #run<T>(fn: () => T): Promise<T> {
    try {
      const result = fn();
      this.#outage.recovered();
      return Promise.resolve(result);
    } catch (err) {
      this.#outage.failed(err);
      return Promise.reject(unavailable(err));
    }
  }

  get(key: string): Promise<string | null> {
    return this.#run(() => this.#get.get(key, Date.now()) ?? null);
  }

  set(key: string, value: string, ttlMs?: number): Promise<void> {
    return this.#run(() => {
      this.#set.run(key, value, expiresAt(ttlMs));
    });
  }

  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    return this.#run(() => this.#setIfAbsent.run(key, value, expiresAt(ttlMs), Date.now()).changes === 1);
  }

  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    return this.#run(() => this.#cas.immediate(key, expected, value, expiresAt(ttlMs)));
  }

  take(key: string): Promise<string | null> {
    return this.#run(() => {
      const row = this.#take.get(key);
      if (row === undefined) return null;
      const [value, exp] = row;
      return exp !== null && exp <= Date.now() ? null : value;
    });
  }

  delete(key: string): Promise<void> {
    return this.#run(() => {
      this.#delete.run(key);
    });
  }

  incr(key: string, ttlMs: number, by = 1): Promise<number> {
    return this.#run(() => {
      const now = Date.now();
      const ttl = normalizeTtl(ttlMs);
      const exp = ttl === undefined ? null : now + ttl;
      return Number(this.#incr.get(key, by, exp, now, by, by, now, exp));
    });
  }

  ttl(key: string): Promise<number> {
    return this.#run(() => {
      const exp = this.#ttl.get(key);
      if (exp === undefined) return -2;
      if (exp === null) return -1;
      const remaining = exp - Date.now();
      return remaining > 0 ? remaining : -2;
    });
  }

  indexAdd(index: string, member: string, ttlMs?: number): Promise<void> {
    return this.#run(() => {
      this.#indexAdd.run(index, member, expiresAt(ttlMs));
    });
  }

  indexRemove(index: string, member: string): Promise<void> {
    return this.#run(() => {
      this.#indexRemove.run(index, member);
    });
  }

  indexMembers(index: string): Promise<string[]> {
    return this.#run(() => this.#indexMembers.all(index, Date.now()));
  }

  publish(channel: string, message: string): Promise<void> {
    let failure: unknown;
    try {
      const { lastInsertRowid } = this.#insertEvent.run(channel, message, Date.now());
      this.#ownIds.add(Number(lastInsertRowid));
      this.#outage.recovered();
    } catch (err) {
      this.#outage.failed(err);
      failure = err;
    }
    // Local subscribers hear it at once, even when the row could not be written.
    this.#subs.deliver(channel, message);
    return failure === undefined ? Promise.resolve() : Promise.reject(unavailable(failure));
  }

  subscribe(channel: string, handler: (message: string) => void): () => void {
    const sub = this.#subs.add(channel, handler);
    return () => void sub.remove();
  }

  ping(): Promise<void> {
    return this.#run(() => {
      this.#ping.get();
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#pollTimer);
    clearInterval(this.#purgeTimer);
    this.#subs.clear();
    if (this.#db.open) this.#db.close();
  }

  /** Delivers events other instances wrote since the last poll. */
  #pollEvents(): void {
    try {
      if (this.#pollFailing) {
        // Events may have been pruned while the file could not be read: caches start over.
        this.#pollFailing = false;
        this.#subs.deliver(RESYNC_CHANNEL, 'poll-recovered');
      }
      for (;;) {
        const rows = this.#readEvents.all(this.#lastEventId, EVENT_BATCH);
        for (const [id, channel, message] of rows) {
          this.#lastEventId = id;
          if (this.#ownIds.delete(id)) continue;
          this.#subs.deliver(channel, message);
        }
        if (rows.length < EVENT_BATCH) break;
      }
      // Own events pruned before the poll saw them would otherwise stay in the set.
      if (this.#ownIds.size > 0) for (const id of this.#ownIds) if (id <= this.#lastEventId) this.#ownIds.delete(id);
    } catch (err) {
      this.#pollFailing = true;
      this.#outage.failed(err);
    }
  }

  /** Deletes expired rows (they are already invisible) and old events. Runs on a timer. */
  purgeExpired(): void {
    try {
      const now = Date.now();
      while (this.#purgeKv.run(now, PURGE_BATCH).changes === PURGE_BATCH);
      while (this.#purgeIdx.run(now, PURGE_BATCH).changes === PURGE_BATCH);
      this.#purgeEvents.run(now - EVENT_RETENTION_MS);
    } catch (err) {
      this.#outage.failed(err);
    }
  }
}

function expiresAt(ttlMs: number | undefined): number | null {
  const ttl = normalizeTtl(ttlMs);
  return ttl === undefined ? null : Date.now() + ttl;
}
