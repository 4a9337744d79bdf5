// Picks the user directory from the config (SPEC 3.1): the users file, PostgreSQL (Django
// layout), or none. Changes are broadcast on the store's `users:changed` channel so every
// instance drops what it cached, even when only one of them noticed the change.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { NOT_IN_MEMORY, type UserDirectory, type UserRecord } from '../context.js';
import type { Store } from '../store/types.js';
import { durationMs } from '../util/duration.js';
import { PostgresUserDirectory } from './postgres-users.js';
import { UsersFileDirectory, type DirectoryLogger } from './users-file.js';

export const USERS_CHANGED_CHANNEL = 'users:changed';

export interface UserDirectoryOptions {
  /** Directory of the config file: a relative users file path resolves against it. */
  readonly configDir: string;
  readonly log: DirectoryLogger;
  /** For cross-instance invalidation; without it changes stay local. */
  readonly store?: Store | undefined;
  /** Watch the users file (default true). */
  readonly watch?: boolean | undefined;
}

/** A `users:changed` message: one user, or (no `user`) everything. */
interface UsersChangedMessage {
  user?: string;
}

function parseMessage(message: string): UsersChangedMessage | undefined {
  try {
    const m: unknown = JSON.parse(message);
    if (m === null || typeof m !== 'object') return undefined;
    const user = (m as { user?: unknown }).user;
    return typeof user === 'string' ? { user } : {};
  } catch {
    return undefined;
  }
}

/** Tell every instance that a user (or, with no name, every user) changed. */
export async function publishUsersChanged(store: Store, username?: string): Promise<void> {
  await store.publish(USERS_CHANGED_CHANNEL, JSON.stringify(username === undefined ? {} : { user: username }));
}

class EmptyDirectory implements UserDirectory {
  async lookup(): Promise<UserRecord | undefined> {
    return undefined;
  }
  async get(): Promise<UserRecord | undefined> {
    return undefined;
  }
  peek(): undefined {
    return undefined;
  }
  onChange(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

/** The directory plus its store subscription, closed together. */
class SubscribedDirectory implements UserDirectory {
  constructor(
    readonly inner: UsersFileDirectory | PostgresUserDirectory,
    private readonly unsubscribe: () => void,
  ) {}
  lookup(login: string): Promise<UserRecord | undefined> {
    return this.inner.lookup(login);
  }
  get(username: string): Promise<UserRecord | undefined> {
    return this.inner.get(username);
  }
  peek(username: string): UserRecord | undefined | typeof NOT_IN_MEMORY {
    return this.inner.peek(username);
  }
  onChange(listener: (username?: string) => void): () => void {
    return this.inner.onChange(listener);
  }
  hashShapes(): readonly string[] | undefined {
    return this.inner instanceof UsersFileDirectory ? this.inner.hashShapes() : undefined;
  }
  async close(): Promise<void> {
    this.unsubscribe();
    await this.inner.close();
  }
}

export async function createUserDirectory(cfg: Config, opts: UserDirectoryOptions): Promise<UserDirectory> {
  const users = cfg.users;
  const identifiers = cfg.login?.identifiers as ('username' | 'email')[] | undefined;
  const { store, log } = opts;
  // A user named like an OAuth client would share its X-Auth-User (issue 9.11): refused at load and on reload.
  const clientIds = (cfg.oauth?.clients ?? []).map((c) => c.id);
  if (users?.file !== undefined && users.postgres !== undefined) throw new Error('users.file and users.postgres cannot both be set');

  if (users?.file !== undefined) {
    const announce = (changed: readonly string[]): void => {
      if (!store) return;
      // One message per user is cheap for the usual edit; a mass edit becomes one "everything".
      const sends = changed.length > 50 ? [publishUsersChanged(store)] : changed.map((u) => publishUsersChanged(store, u));
      Promise.all(sends).catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not broadcast a users change'));
    };
    const dir = await UsersFileDirectory.open({ path: resolve(opts.configDir, users.file), log, identifiers, watch: opts.watch, onReloaded: announce, clientIds });
    // Another instance saw the file change: re-read it now rather than wait for this watcher.
    const unsubscribe = store?.subscribe(USERS_CHANGED_CHANNEL, (message) => {
      if (parseMessage(message)) void dir.reload({ announce: false });
    });
    return new SubscribedDirectory(dir, unsubscribe ?? (() => undefined));
  }

  if (users?.postgres !== undefined) {
    const pgCfg = users.postgres;
    if (pgCfg.preset !== 'django') throw new Error(`users.postgres.preset ${pgCfg.preset} is not supported`);
    // The config loader normally resolves { file } secrets; accept an unresolved one too.
    const url = typeof pgCfg.url === 'string' ? pgCfg.url : readFileSync(resolve(opts.configDir, pgCfg.url.file), 'utf8').trim();
    const dir = new PostgresUserDirectory({ url, log, identifiers, cacheTtlMs: durationMs(pgCfg.cacheTtl, '30s') });
    await refuseClientNamedUsers(dir, clientIds, log);
    const unsubscribe = store?.subscribe(USERS_CHANGED_CHANNEL, (message) => {
      const m = parseMessage(message);
      if (m) dir.invalidate(m.user);
    });
    return new SubscribedDirectory(dir, unsubscribe ?? (() => undefined));
  }

  return new EmptyDirectory();
}

/** The Django database behind `users.postgres` (preset django), for the Django drop-in (SPEC 3.2). */
export function djangoDatabase(users: UserDirectory): PostgresUserDirectory | undefined {
  const inner = users instanceof SubscribedDirectory ? users.inner : users;
  return inner instanceof PostgresUserDirectory ? inner : undefined;
}

/**
 * PostgreSQL users cannot be listed up front: each OAuth client id is looked up once at start,
 * and a user by that name stops the gateway (as a clashing users file does). An unreachable
 * database is not a clash: the start goes on and the store-down rules apply.
 */
async function refuseClientNamedUsers(dir: PostgresUserDirectory, clientIds: readonly string[], log: DirectoryLogger): Promise<void> {
  for (const id of clientIds) {
    let user: UserRecord | undefined;
    try {
      user = await dir.get(id);
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not check OAuth client ids against PostgreSQL users');
      return;
    }
    if (user !== undefined) {
      await dir.close();
      throw new Error(`oauth.clients: client id "${id}" is also a user in PostgreSQL: rename the client, or its tokens reach upstreams as that user`);
    }
  }
}
