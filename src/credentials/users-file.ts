// The users file (SPEC 3.1): loaded and validated at start, watched, and reloaded atomically.
// A broken edit is logged and the previous users stay in force; a good edit replaces them at
// once, and listeners hear which users changed so caches keyed on them drop their entries.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { UserDirectory, UserRecord } from '../context.js';
import { hashShape, passwordHashFormat } from './passwords.js';

export type LoginIdentifier = 'username' | 'email';

/** The part of a pino / Fastify logger the users directories use. */
export interface DirectoryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

// Names and groups end up in identity headers (X-Auth-User, comma-separated X-Auth-Groups):
// no control characters, no commas in groups, no ':' in usernames (Basic splits at the first ':').
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const USERNAME_MAX = 150;
const EmailSchema = Type.String({ pattern: '^[^\\s@\\u0000-\\u001f\\u007f]+@[^\\s@\\u0000-\\u001f\\u007f]+$', maxLength: 254 });
const GroupSchema = Type.String({ pattern: '^[^,\\s\\u0000-\\u001f\\u007f]+$', maxLength: 200 });

export const UserEntrySchema = Type.Object(
  {
    email: Type.Optional(EmailSchema),
    password: Type.Optional(Type.String({ minLength: 1, description: 'argon2id, bcrypt, scrypt, or Django pbkdf2_sha256 / pbkdf2_sha1 hash' })),
    groups: Type.Optional(Type.Array(GroupSchema)),
    disabled: Type.Optional(Type.Boolean()),
    mfa: Type.Optional(Type.Object({ required: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export const UsersFileSchema = Type.Object(
  { users: Type.Record(Type.String(), UserEntrySchema) },
  { additionalProperties: false },
);
type UsersFileDoc = Static<typeof UsersFileSchema>;
type UserEntry = Static<typeof UserEntrySchema>;

/** A users file that cannot be used; `errors` are `FILE:LINE:COL: path: message` lines (no values). */
export class UsersFileError extends Error {
  readonly errors: readonly string[];
  constructor(file: string, errors: string[]) {
    super(`invalid users file ${file}:\n${errors.join('\n')}`);
    this.name = 'UsersFileError';
    this.errors = errors;
  }
}

/**
 * Changes whenever anything a cached verification depends on changes (password hash, disabled,
 * groups, email, MFA requirement). Stable across instances: the same record gives the same version.
 */
export function userVersion(parts: { passwordHash?: string | undefined; disabled: boolean; groups: readonly string[]; email?: string | undefined; mfaRequired: boolean }): string {
  return createHash('sha256')
    .update(JSON.stringify(['authgate-user-v1', parts.passwordHash ?? null, parts.disabled, parts.groups, parts.email ?? null, parts.mfaRequired]))
    .digest('base64url')
    .slice(0, 22);
}

export interface ParsedUsers {
  readonly byName: ReadonlyMap<string, UserRecord>;
  readonly byEmail: ReadonlyMap<string, UserRecord>;
}

function pointerToPath(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `FILE:LINE:COL` of the deepest existing YAML node along `path`. */
function locate(doc: Document, lines: LineCounter, file: string, path: readonly (string | number)[]): string {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return `${file}:${pos.line}:${pos.col}`;
    }
  }
  return `${file}:1:1`;
}

const displayPath = (path: readonly (string | number)[]): string => (path.length === 0 ? '(root)' : path.join('.'));

/**
 * Parses and validates a users file's text. Throws UsersFileError listing every problem.
 * `clientIds`: OAuth client ids (oauth.clients); a user by one of those names is refused, since
 * the client's tokens would reach upstreams as that user (`X-Auth-User`, issue 9.11).
 */
export function parseUsersFile(text: string, file: string, clientIds: readonly string[] = []): ParsedUsers {
  const reserved = new Set(clientIds.map((id) => id.toLowerCase()));
  const lines = new LineCounter();
  // prettyErrors off: its code frames would quote the file, which holds password hashes.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new UsersFileError(
      file,
      doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return `${file}:${pos.line}:${pos.col}: ${e.code}: ${e.message.split('\n')[0] ?? ''}`;
      }),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new UsersFileError(file, [`${file}:1:1: (root): expected a map with a "users" key`]);
  }
  // `users:` with nothing under it is an empty map.
  const record = data as Record<string, unknown>;
  if ('users' in record && record.users === null) record.users = {};
  const errors: string[] = [];
  for (const e of Value.Errors(UsersFileSchema, data)) {
    const path = pointerToPath(e.path);
    errors.push(`${locate(doc, lines, file, path)}: ${displayPath(path)}: ${e.message}`);
  }
  if (errors.length > 0) throw new UsersFileError(file, errors);

  const entries = Object.entries((data as UsersFileDoc).users) as [string, UserEntry][];
  const byName = new Map<string, UserRecord>();
  const byEmail = new Map<string, UserRecord>();
  const foldedNames = new Map<string, string>();
  for (const [username, entry] of entries) {
    const at = (key?: string): string => locate(doc, lines, file, key ? ['users', username, key] : ['users', username]);
    if (username.length === 0 || username.length > USERNAME_MAX || CONTROL.test(username) || username.includes(':') || /\s/.test(username)) {
      errors.push(`${at()}: users.${username}: a username is 1-${USERNAME_MAX} characters without ':', spaces or control characters`);
      continue;
    }
    const folded = username.toLowerCase();
    const clash = foldedNames.get(folded);
    if (clash !== undefined) errors.push(`${at()}: users.${username}: differs from user "${clash}" only by case`);
    foldedNames.set(folded, username);
    if (reserved.has(folded)) errors.push(`${at()}: users.${username}: is also an OAuth client id (oauth.clients): rename the user or the client, or the client's tokens reach upstreams as this user`);
    if (entry.password !== undefined && passwordHashFormat(entry.password) === undefined) {
      errors.push(`${at('password')}: users.${username}.password: not a supported password hash (argon2id, bcrypt, scrypt, pbkdf2_sha256, pbkdf2_sha1), or its cost is too high`);
    }
    const groups = Object.freeze([...new Set(entry.groups ?? [])]);
    const disabled = entry.disabled ?? false;
    const mfaRequired = entry.mfa?.required ?? false;
    const record: UserRecord = Object.freeze({
      username,
      email: entry.email,
      groups,
      disabled,
      passwordHash: entry.password,
      mfaRequired,
      version: userVersion({ passwordHash: entry.password, disabled, groups, email: entry.email, mfaRequired }),
    });
    byName.set(username, record);
    if (entry.email !== undefined) {
      const key = entry.email.toLowerCase();
      const other = byEmail.get(key);
      if (other) errors.push(`${at('email')}: users.${username}.email: the same email as user "${other.username}"`);
      else byEmail.set(key, record);
    }
  }
  // A login name must designate one user: an email that is also someone else's username is ambiguous.
  for (const [email, record] of byEmail) {
    const owner = [...byName.values()].find((u) => u.username.toLowerCase() === email && u.username !== record.username);
    if (owner) errors.push(`${locate(doc, lines, file, ['users', record.username, 'email'])}: users.${record.username}.email: is also the username of "${owner.username}"`);
  }
  if (errors.length > 0) throw new UsersFileError(file, errors);
  return { byName, byEmail };
}

export interface UsersFileOptions {
  /** Absolute path of the users file. */
  readonly path: string;
  readonly log: DirectoryLogger;
  /** What a login name may be (login.identifiers); default both. */
  readonly identifiers?: readonly LoginIdentifier[] | undefined;
  /** Watch the file and reload on change (default true). */
  readonly watch?: boolean | undefined;
  /** Fallback stat poll for filesystems where fs.watch misses events (default 500 ms). */
  readonly pollIntervalMs?: number | undefined;
  /** Coalesces the burst of events one save produces (default 50 ms). */
  readonly debounceMs?: number | undefined;
  /** OAuth client ids: no user may have one as a name (parseUsersFile). */
  readonly clientIds?: readonly string[] | undefined;
  /** Called after a reload that changed users (not for `notify`): e.g. to tell other instances. */
  readonly onReloaded?: ((changed: readonly string[]) => void) | undefined;
}

type ChangeListener = (username?: string) => void;

/** The users-file directory: every lookup is answered from memory. */
export class UsersFileDirectory implements UserDirectory {
  readonly path: string;
  readonly #log: DirectoryLogger;
  readonly #byUsername: boolean;
  readonly #byEmail: boolean;
  readonly #listeners = new Set<ChangeListener>();
  #users: ParsedUsers;
  #shapes: { users: ParsedUsers; hashes: readonly string[] } | undefined;
  #contentHash: string;
  /** Hash of the last content that failed to load, so a broken file is reported once. */
  #failedHash: string | undefined;
  #statSignature = '';
  #statFailed = false;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #debounceMs: number;
  readonly #onReloaded: ((changed: readonly string[]) => void) | undefined;
  readonly #clientIds: readonly string[] | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(opts: UsersFileOptions, users: ParsedUsers, contentHash: string, signature: string) {
    this.path = opts.path;
    this.#log = opts.log;
    const ids = opts.identifiers ?? ['username', 'email'];
    this.#byUsername = ids.includes('username');
    this.#byEmail = ids.includes('email');
    this.#users = users;
    this.#contentHash = contentHash;
    this.#statSignature = signature;
    this.#debounceMs = opts.debounceMs ?? 50;
    this.#onReloaded = opts.onReloaded;
    this.#clientIds = opts.clientIds;
  }

  /** Loads the file (throws UsersFileError or a read error: a gateway does not start on a bad file). */
  static async open(opts: UsersFileOptions): Promise<UsersFileDirectory> {
    const [text, st] = await Promise.all([readFile(opts.path, 'utf8'), stat(opts.path)]);
    const users = parseUsersFile(text, opts.path, opts.clientIds);
    const dir = new UsersFileDirectory(opts, users, sha256(text), signatureOf(st));
    opts.log.info({ usersFile: opts.path, users: users.byName.size }, 'users file loaded');
    if (opts.watch ?? true) dir.#startWatching(opts.pollIntervalMs ?? 500);
    return dir;
  }

  get size(): number {
    return this.#users.byName.size;
  }

  async lookup(login: string): Promise<UserRecord | undefined> {
    return this.lookupSync(login);
  }

  /** Synchronous lookup (the file is in memory): for hot paths that want no promise. */
  lookupSync(login: string): UserRecord | undefined {
    if (this.#byUsername) {
      const user = this.#users.byName.get(login);
      if (user) return user;
    }
    if (this.#byEmail && login.includes('@')) return this.#users.byEmail.get(login.toLowerCase());
    return undefined;
  }

  async get(username: string): Promise<UserRecord | undefined> {
    return this.#users.byName.get(username);
  }

  peek(username: string): UserRecord | undefined {
    return this.#users.byName.get(username);
  }

  /** One hash per cost shape in the file (recomputed after a reload), for login timing. */
  hashShapes(): readonly string[] {
    if (this.#shapes?.users !== this.#users) {
      const byShape = new Map<string, string>();
      for (const user of this.#users.byName.values()) {
        const shape = user.passwordHash === undefined ? undefined : hashShape(user.passwordHash);
        if (shape !== undefined && !byShape.has(shape)) byShape.set(shape, user.passwordHash!);
      }
      this.#shapes = { users: this.#users, hashes: [...byShape.values()] };
    }
    return this.#shapes.hashes;
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * Re-reads the file now (also what the watcher calls). Resolves with the usernames whose
   * record changed, were added or were removed; [] when nothing changed or the new file is broken.
   * `announce: false` skips the onReloaded hook (a reload prompted by another instance's news).
   */
  async reload(opts: { announce?: boolean } = {}): Promise<string[]> {
    // Serialized: a reload asked for while one runs starts after it (and sees the newest file).
    const next = this.#chain.then(() => this.#reloadOnce(opts.announce ?? true));
    this.#chain = next.catch(() => []);
    return next;
  }

  async #reloadOnce(announce: boolean): Promise<string[]> {
    if (this.#closed) return [];
    let text: string;
    let signature: string;
    try {
      const st = await stat(this.path);
      signature = signatureOf(st);
      text = await readFile(this.path, 'utf8');
      if (this.#statFailed) this.#log.info({ usersFile: this.path }, 'users file readable again');
      this.#statFailed = false;
    } catch (err) {
      if (!this.#statFailed) this.#log.error({ usersFile: this.path, err: errorMessage(err) }, 'users file unreadable; keeping the previous users');
      this.#statFailed = true;
      return [];
    }
    this.#statSignature = signature;
    const hash = sha256(text);
    if (hash === this.#contentHash) return [];
    if (hash === this.#failedHash) return [];
    let next: ParsedUsers;
    try {
      next = parseUsersFile(text, this.path, this.#clientIds);
    } catch (err) {
      this.#failedHash = hash;
      const errors = err instanceof UsersFileError ? err.errors : [errorMessage(err)];
      this.#log.error({ usersFile: this.path, errors }, 'users file invalid; keeping the previous users');
      return [];
    }
    const previous = this.#users;
    this.#users = next;
    this.#contentHash = hash;
    this.#failedHash = undefined;
    const changed = diffUsers(previous.byName, next.byName);
    this.#log.info({ usersFile: this.path, users: next.byName.size, changed: changed.length }, 'users file reloaded');
    for (const username of changed) this.#emit(username);
    if (announce && changed.length > 0) {
      try {
        this.#onReloaded?.(changed);
      } catch (err) {
        this.#log.error({ usersFile: this.path, err: errorMessage(err) }, 'users reload hook failed');
      }
    }
    return changed;
  }

  /** Tell listeners that `username` (or anything, when undefined) may have changed. */
  notify(username?: string): void {
    this.#emit(username);
  }

  #emit(username?: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(username);
      } catch (err) {
        this.#log.error({ usersFile: this.path, err: errorMessage(err) }, 'users change listener failed');
      }
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.reload();
    }, this.#debounceMs);
    this.#debounce.unref();
  }

  #startWatching(pollIntervalMs: number): void {
    const base = basename(this.path);
    try {
      // Watch the directory, not the file: editors save by writing a new file and renaming it.
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename === null || filename === base || String(filename) === base) this.#schedule();
      });
      this.#watcher.on('error', (err) => {
        this.#log.warn({ usersFile: this.path, err: errorMessage(err) }, 'users file watcher failed; polling only');
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (err) {
      this.#log.warn({ usersFile: this.path, err: errorMessage(err) }, 'cannot watch the users file; polling only');
    }
    this.#poll = setInterval(() => {
      stat(this.path).then(
        (st) => {
          if (signatureOf(st) !== this.#statSignature || this.#statFailed) this.#schedule();
        },
        () => {
          if (!this.#statFailed) this.#schedule();
        },
      );
    }, pollIntervalMs);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#listeners.clear();
    await this.#chain;
  }
}

/** Usernames added, removed, or whose version changed. */
export function diffUsers(before: ReadonlyMap<string, UserRecord>, after: ReadonlyMap<string, UserRecord>): string[] {
  const changed: string[] = [];
  for (const [name, record] of after) if (before.get(name)?.version !== record.version) changed.push(name);
  for (const name of before.keys()) if (!after.has(name)) changed.push(name);
  return changed;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function signatureOf(st: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
