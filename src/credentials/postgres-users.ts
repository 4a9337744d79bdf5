// Users read from an existing PostgreSQL database laid out by Django (SPEC 3.1, preset django):
// auth_user, auth_group, auth_user_groups. Records are cached for `cacheTtl` (a changed password
// or is_active=false holds within it), unknown names briefly; a database failure fails closed.
import pg from 'pg';
import { LRUCache } from 'lru-cache';
import type { UserDirectory, UserRecord } from '../context.js';
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
// Django does not make emails unique: two matches mean the email designates nobody.
const BY_EMAIL = `${SELECT_USER} WHERE lower(u.email) = lower($1) GROUP BY u.id LIMIT 2`;

interface AuthUserRow {
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
  readonly #inFlight = new Map<string, Promise<UserRecord | undefined>>();
  readonly #maxInFlight: number;
  readonly #listeners = new Set<(username?: string) => void>();
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

  onChange(listener: (username?: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Drops cached records (one user's, or all) and tells listeners; e.g. on a `users:changed` message. */
  invalidate(username?: string): void {
    if (username === undefined) this.#found.clear();
    else for (const [key, record] of this.#found.entries()) if (record.username === username) this.#found.delete(key);
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
    let rows: AuthUserRow[];
    try {
      rows = (await this.#pool.query<AuthUserRow>(sql, [value])).rows;
    } catch (err) {
      if (!this.#down) this.#log.error({ users: 'postgres', err: err instanceof Error ? err.message : String(err) }, 'postgres users unavailable');
      this.#down = true;
      const e = new StoreUnavailableError('The user directory is unavailable.');
      e.cause = err;
      throw e;
    }
    if (this.#down) this.#log.info({ users: 'postgres' }, 'postgres users available again');
    this.#down = false;
    if (rows.length !== 1) return undefined;
    return this.#toRecord(rows[0]!);
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
