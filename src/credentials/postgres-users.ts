// Users read from an existing PostgreSQL database laid out by Django (SPEC 3.1, preset django):
// auth_user, auth_group, auth_user_groups. Records are cached for `cacheTtl` (a changed password
// or is_active=false holds within it), unknown names briefly; a database failure fails closed.
import pg from 'pg';
import { LRUCache } from 'lru-cache';
import { NOT_IN_MEMORY, type UserDirectory, type UserRecord } from '../context.js';
import { StoreUnavailableError } from '../errors.js';
import { userVersion, type DirectoryLogger, type LoginIdentifier } from './users-file.js';

export interface PostgresUsersOptions {
  readonly url: string;
  readonly log: DirectoryLogger;
  /** How long a found user is cached (ms); 0 disables the cache. */
  readonly cacheTtlMs: number;
  readonly identifiers?: readonly LoginIdentifier[] | undefined;
  /** Cached users, and separately cached unknown names (default 10,000 each). */
  readonly maxEntries?: number | undefined;
  /** How long an unknown name is remembered (default min(cacheTtl, 5 s)). */
  readonly negativeTtlMs?: number | undefined;
  /** Connections (default 4) and timeouts: a slow database must not hold requests for long. */
  readonly poolMax?: number | undefined;
  readonly connectTimeoutMs?: number | undefined;
  readonly queryTimeoutMs?: number | undefined;
}

const SELECT_USER = `
  SELECT u.username, u.email, u.password, u.is_active, u.is_staff, u.is_superuser,
         COALESCE(array_agg(g.name ORDER BY g.name) FILTER (WHERE g.name IS NOT NULL), '{}') AS groups
    FROM auth_user u
    LEFT JOIN auth_user_groups ug ON ug.user_id = u.id
    LEFT JOIN auth_group g ON g.id = ug.group_id`;
const BY_USERNAME = `${SELECT_USER} WHERE u.username = $1 GROUP BY u.id`;
// The Django drop-in (SPEC 3.2) finds users by primary key; the raw password column is kept for
// get_session_auth_hash, which HMACs it even when it is unusable ('!...').
const BY_ID = `${SELECT_USER.replace('SELECT u.username', 'SELECT u.id::text AS id, u.username')} WHERE u.id = $1 GROUP BY u.id`;
const SESSION_ROW_EXPIRY = 'SELECT session_data, extract(epoch FROM expire_date)::float8 AS expires FROM django_session WHERE session_key = $1 AND expire_date > now()';
const DRF_TOKEN = 'SELECT key, user_id::text AS user_id, extract(epoch FROM created)::float8 AS created FROM authtoken_token WHERE key = $1';

/** Django's auth_user.id is an integer (AutoField / BigAutoField): anything else finds nobody. */
const DJANGO_ID = /^[1-9][0-9]{0,17}$/;

/** A Django user as the drop-in authenticators need it: the record plus what Django hashes. */
export interface DjangoUser {
  readonly id: string;
  readonly record: UserRecord;
  /** auth_user.password as stored (may be '' or '!…'); never logged. */
  readonly password: string;
}

/** A live django_session row. */
export interface DjangoSessionRow {
  readonly data: string;
  /** expire_date (epoch seconds). */
  readonly expires: number;
}

/** An authtoken_token row (DRF keeps the key in clear). */
export interface DrfTokenRow {
  readonly key: string;
  readonly userId: string;
  /** created (epoch seconds). */
  readonly created: number;
}
// Django does not make emails unique: two matches mean the email designates nobody.
const BY_EMAIL = `${SELECT_USER} WHERE lower(u.email) = lower($1) GROUP BY u.id LIMIT 2`;

interface AuthUserRow {
  id?: string;
  username: string;
  email: string | null;
  password: string | null;
  is_active: boolean;
  is_staff: boolean;
  is_superuser: boolean;
  groups: string[];
}

// Values that end up in identity headers: no control characters; groups also no commas.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const BAD_GROUP = /[,\s\u0000-\u001f\u007f-\u009f]/;

export class PostgresUserDirectory implements UserDirectory {
  readonly #pool: pg.Pool;
  readonly #log: DirectoryLogger;
  readonly #byUsername: boolean;
  readonly #byEmail: boolean;
  readonly #cacheTtlMs: number;
  readonly #found: LRUCache<string, UserRecord>;
  readonly #unknown: LRUCache<string, true>;
  readonly #byId: LRUCache<string, DjangoUser | false>;
  readonly #idInFlight = new Map<string, Promise<DjangoUser | undefined>>();
  readonly #inFlight = new Map<string, Promise<UserRecord | undefined>>();
  readonly #maxInFlight: number;
  readonly #listeners = new Set<(username?: string) => void>();
  readonly #unknownTtlMs: number;
  #down = false;

  constructor(opts: PostgresUsersOptions) {
    this.#log = opts.log;
    const ids = opts.identifiers ?? ['username', 'email'];
    this.#byUsername = ids.includes('username');
    this.#byEmail = ids.includes('email');
    this.#cacheTtlMs = Math.max(0, opts.cacheTtlMs);
    const max = opts.maxEntries ?? 10_000;
    this.#maxInFlight = max;
    this.#found = new LRUCache({ max, ttl: Math.max(1, this.#cacheTtlMs) });
    this.#unknown = new LRUCache({ max, ttl: Math.max(1, opts.negativeTtlMs ?? Math.min(this.#cacheTtlMs, 5000)) });
    // Found users for cacheTtl; an unknown id as briefly as an unknown name.
    this.#byId = new LRUCache({ max, ttl: Math.max(1, this.#cacheTtlMs) });
    this.#unknownTtlMs = Math.max(1, opts.negativeTtlMs ?? Math.min(this.#cacheTtlMs, 5000));
    const queryTimeout = opts.queryTimeoutMs ?? 5000;
    this.#pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolMax ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 3000,
      idleTimeoutMillis: 30_000,
      query_timeout: queryTimeout,
      statement_timeout: queryTimeout,
      allowExitOnIdle: true,
    });
    // An idle client's connection dropping must not crash the process.
    this.#pool.on('error', (err) => this.#log.warn({ users: 'postgres', err: err.message }, 'postgres users: idle connection error'));
  }

  async lookup(login: string): Promise<UserRecord | undefined> {
    if (login.length === 0 || login.length > 254) return undefined;
    if (this.#byUsername) {
      const user = await this.#cached(`u:${login}`, () => this.#query(BY_USERNAME, login));
      if (user) return user;
    }
    if (this.#byEmail && login.includes('@')) return this.#cached(`e:${login.toLowerCase()}`, () => this.#query(BY_EMAIL, login));
    return undefined;
  }

  async get(username: string): Promise<UserRecord | undefined> {
    if (username.length === 0 || username.length > 254) return undefined;
    return this.#cached(`u:${username}`, () => this.#query(BY_USERNAME, username));
  }

  /** `get` from the cache alone. */
  peek(username: string): UserRecord | undefined | typeof NOT_IN_MEMORY {
    if (username.length === 0 || username.length > 254) return undefined;
    if (this.#cacheTtlMs <= 0) return NOT_IN_MEMORY;
    const key = `u:${username}`;
    const hit = this.#found.get(key);
    if (hit) return hit;
    return this.#unknown.has(key) ? undefined : NOT_IN_MEMORY;
  }

  /** How long found users are cached (ms): the Django drop-in's caches hold no longer. */
  get cacheTtlMs(): number {
    return this.#cacheTtlMs;
  }

  /** `getById` from the cache alone (NOT_IN_MEMORY when only the database can tell). */
  peekById(id: string): DjangoUser | undefined | typeof NOT_IN_MEMORY {
    if (!DJANGO_ID.test(id)) return undefined;
    if (this.#cacheTtlMs <= 0) return NOT_IN_MEMORY;
    const hit = this.#byId.get(id);
    return hit === undefined ? NOT_IN_MEMORY : hit === false ? undefined : hit;
  }

  /** A Django user by auth_user.id, cached like `get` (no round trip while warm). */
  async getById(id: string): Promise<DjangoUser | undefined> {
    if (!DJANGO_ID.test(id)) return undefined;
    if (this.#cacheTtlMs > 0) {
      const hit = this.#byId.get(id);
      if (hit !== undefined) return hit === false ? undefined : hit;
    }
    const pending = this.#idInFlight.get(id);
    if (pending) return pending;
    const run = this.#rows<AuthUserRow>(BY_ID, id).then((rows) => {
      const row = rows.length === 1 ? rows[0]! : undefined;
      const record = row ? this.#toRecord(row) : undefined;
      const user = row && record ? Object.freeze({ id, record, password: row.password ?? '' }) : undefined;
      if (this.#cacheTtlMs > 0) {
        if (user) this.#byId.set(id, user);
        else this.#byId.set(id, false, { ttl: this.#unknownTtlMs });
      }
      return user;
    });
    if (this.#idInFlight.size < this.#maxInFlight) {
      this.#idInFlight.set(id, run);
      void run.then(
        () => this.#idInFlight.delete(id),
        () => this.#idInFlight.delete(id),
      );
    }
    return run;
  }

  /** The django_session row for a session key, if it exists and has not expired (uncached: the caller caches). */
  async djangoSession(sessionKey: string): Promise<DjangoSessionRow | undefined> {
    const rows = await this.#rows<{ session_data: string; expires: number }>(SESSION_ROW_EXPIRY, sessionKey);
    const row = rows[0];
    return row ? { data: row.session_data, expires: row.expires } : undefined;
  }

  /** The authtoken_token row for a DRF key (uncached: the caller caches by a keyed hash). */
  async drfToken(key: string): Promise<DrfTokenRow | undefined> {
    const rows = await this.#rows<{ key: string; user_id: string; created: number }>(DRF_TOKEN, key);
    const row = rows[0];
    return row ? { key: row.key, userId: row.user_id, created: Math.floor(row.created) } : undefined;
  }

  onChange(listener: (username?: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Drops cached records (one user's, or all) and tells listeners; e.g. on a `users:changed` message. */
  invalidate(username?: string): void {
    if (username === undefined) {
      this.#found.clear();
      this.#byId.clear();
    } else {
      for (const [key, record] of this.#found.entries()) if (record.username === username) this.#found.delete(key);
      for (const [key, user] of this.#byId.entries()) if (user === false || user.record.username === username) this.#byId.delete(key);
    }
    // Any unknown name may now exist.
    this.#unknown.clear();
    for (const listener of this.#listeners) {
      try {
        listener(username);
      } catch (err) {
        this.#log.error({ users: 'postgres', err: err instanceof Error ? err.message : String(err) }, 'users change listener failed');
      }
    }
  }

  /** Cached user, cached "unknown", or one query shared by concurrent callers. */
  async #cached(key: string, load: () => Promise<UserRecord | undefined>): Promise<UserRecord | undefined> {
    if (this.#cacheTtlMs > 0) {
      const hit = this.#found.get(key);
      if (hit) return hit;
      if (this.#unknown.has(key)) return undefined;
    }
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const run = load().then((user) => {
      if (this.#cacheTtlMs > 0) {
        if (user) this.#found.set(key, user);
        else this.#unknown.set(key, true);
      }
      return user;
    });
    if (this.#inFlight.size < this.#maxInFlight) {
      this.#inFlight.set(key, run);
      void run.then(
        () => this.#inFlight.delete(key),
        () => this.#inFlight.delete(key),
      );
    }
    return run;
  }

  async #query(sql: string, value: string): Promise<UserRecord | undefined> {
    const rows = await this.#rows<AuthUserRow>(sql, value);
    if (rows.length !== 1) return undefined;
    return this.#toRecord(rows[0]!);
  }

  /** One parameterised query; a database failure fails closed (StoreUnavailableError). */
  async #rows<T extends pg.QueryResultRow>(sql: string, value: string): Promise<T[]> {
    let rows: T[];
    try {
      rows = (await this.#pool.query<T>(sql, [value])).rows;
    } catch (err) {
      if (!this.#down) this.#log.error({ users: 'postgres', err: err instanceof Error ? err.message : String(err) }, 'postgres users unavailable');
      this.#down = true;
      const e = new StoreUnavailableError('The user directory is unavailable.');
      e.cause = err;
      throw e;
    }
    if (this.#down) this.#log.info({ users: 'postgres' }, 'postgres users available again');
    this.#down = false;
    return rows;
  }

  #toRecord(row: AuthUserRow): UserRecord | undefined {
    if (CONTROL.test(row.username) || row.username.includes(':')) {
      this.#log.warn({ users: 'postgres' }, 'postgres users: a username with control characters or ":" was ignored');
      return undefined;
    }
    const groups = new Set(row.groups.filter((g) => g.length > 0 && !BAD_GROUP.test(g)));
    if (row.is_staff) groups.add('staff');
    if (row.is_superuser) groups.add('superuser');
    // Django marks unusable passwords with a leading '!'.
    const passwordHash = row.password && !row.password.startsWith('!') ? row.password : undefined;
    const email = row.email && !CONTROL.test(row.email) ? row.email : undefined;
    const disabled = !row.is_active;
    const groupList = Object.freeze([...groups]);
    return Object.freeze({
      username: row.username,
      email,
      groups: groupList,
      disabled,
      passwordHash,
      mfaRequired: false,
      version: userVersion({ passwordHash, disabled, groups: groupList, email, mfaRequired: false }),
    });
  }

  /** Pool statistics and cache sizes, for tests and metrics. */
  stats(): { cached: number; unknown: number; inFlight: number; poolTotal: number } {
    return { cached: this.#found.size, unknown: this.#unknown.size, inFlight: this.#inFlight.size, poolTotal: this.#pool.totalCount };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    await this.#pool.end();
  }
}
