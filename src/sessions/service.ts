// Browser sessions (SPEC 4 step 4, SPEC 6 /login, /logout; THREATS 27-36). One service per
// loaded config (`acquireSessionService(ctx)`), shared by the `session` authenticator and the login
// endpoints so they see one cache. Store layout:
//   session:<id>        the record (JSON), TTL = absolute timeout
//   session:seen:<id>   last activity (epoch ms), TTL = idle timeout; written at most every
//                       min(idle/20, 60 s) — an idle session simply loses this key
//   sessions:user:<u>   index of a user's session ids
// Logout anywhere publishes the id on `sessions:revoked`; every instance drops it from its cache.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { NOT_IN_MEMORY, peekUser, type GatewayContext } from '../context.js';
import { GatewayError } from '../errors.js';
import { RESYNC_CHANNEL } from '../store/types.js';
import { durationMs } from '../util/duration.js';
import { refCounted } from '../util/ref-counted.js';
import { configuredSessionSecrets, loadSessionSecrets, sessionHandle, SessionCookieSigner } from './cookie.js';
import type { NewSession, OidcSessionInfo, SessionLookup, SessionRecord } from './types.js';

export const DEFAULT_SESSION_COOKIE = 'authgate_session';
export const REVOKED_CHANNEL = 'sessions:revoked';
const CACHE_MAX = 50_000;
/** What a session keeps of its sign-in request (the account page shows them). */
const MAX_USER_AGENT_LENGTH = 512;
const MAX_IP_LENGTH = 64;
const CACHE_TTL_MS = 30_000;
const MAX_WRITE_INTERVAL_MS = 60_000;
/** A session waiting for its second factor lives at most this long (SPEC 6 /login). */
export const PENDING_MFA_TTL_MS = 5 * 60_000;
/** How often the store is probed: while it fails, cached sessions are not trusted (THREATS 36). */
const HEALTH_INTERVAL_MS = 1_000;

const recordKey = (id: string): string => `session:${id}`;
const seenKey = (id: string): string => `session:seen:${id}`;
const userIndexKey = (user: string): string => `sessions:user:${user}`;
/** Back-channel logout indexes: sessions of one provider session (sid) or one provider user (sub). */
const oidcIndexKey = (iss: string, kind: 'sid' | 'sub', value: string): string => `sessions:oidc:${kind}:${createHash('sha256').update(`${iss}\n${value}`).digest('base64url')}`;

export interface SessionSettings {
  readonly cookieName: string;
  readonly idleMs: number;
  readonly absoluteMs: number;
  /** How often the last-activity time is written to the store. */
  readonly writeIntervalMs: number;
  /** `Secure` cookie attribute: publicUrl is https. */
  readonly secure: boolean;
}

export function sessionSettings(ctx: Pick<GatewayContext, 'config' | 'publicUrl'>): SessionSettings {
  const cfg = ctx.config.login?.session;
  const idleMs = durationMs(cfg?.idleTimeout, '30m');
  const absoluteMs = durationMs(cfg?.absoluteTimeout, '12h');
  return {
    cookieName: cfg?.cookie ?? DEFAULT_SESSION_COOKIE,
    idleMs,
    absoluteMs,
    writeIntervalMs: Math.max(10, Math.min(Math.floor(idleMs / 20), MAX_WRITE_INTERVAL_MS)),
    secure: ctx.publicUrl.protocol === 'https:',
  };
}

/** Attributes of the session cookie (THREATS 29), for @fastify/cookie's setCookie/clearCookie. */
export interface SessionCookieOptions {
  readonly path: '/';
  readonly httpOnly: true;
  readonly sameSite: 'lax';
  readonly secure: boolean;
  /** Seconds. */
  readonly maxAge: number;
}

interface CacheEntry {
  readonly record: SessionRecord;
  /** Latest activity this instance knows of (epoch ms). */
  lastSeen: number;
  /** When the last-activity key was last written (or read) from the store. */
  lastWrite: number;
  /** The user directory version the record was last checked against. */
  userVersion?: string;
}

const ABSENT: SessionLookup = Object.freeze({ kind: 'absent', clear: false });
const ABSENT_CLEAR: SessionLookup = Object.freeze({ kind: 'absent', clear: true });

export interface SessionServiceOptions {
  /** Clock (epoch ms); tests may inject one. */
  now?: () => number;
}

export class SessionService {
  readonly settings: SessionSettings;
  readonly #ctx: GatewayContext;
  readonly #now: () => number;
  readonly #cache: LRUCache<string, CacheEntry>;
  readonly #unsubscribe: () => void;
  #signer: SessionCookieSigner | undefined;
  #signerLoading: Promise<SessionCookieSigner> | undefined;
  #closed = false;
  /** Set by a failed store call or probe: every lookup goes to the store (and fails closed). */
  #storeDown = false;
  #probing = false;
  readonly #probe: NodeJS.Timeout;

  constructor(ctx: GatewayContext, opts: SessionServiceOptions = {}) {
    this.#ctx = ctx;
    this.#now = opts.now ?? Date.now;
    this.settings = sessionSettings(ctx);
    // Configured secrets are checked now (length), so a bad one stops the gateway at start.
    const configured = configuredSessionSecrets(ctx);
    if (configured !== undefined) this.#signer = new SessionCookieSigner(configured);
    this.#cache = new LRUCache<string, CacheEntry>({
      max: CACHE_MAX,
      ttl: CACHE_TTL_MS,
      fetchMethod: (id) => this.#fetch(id),
    });
    const offRevoked = ctx.store.subscribe(REVOKED_CHANNEL, (id) => {
      this.#cache.delete(id);
    });
    // Logouts broadcast while this instance could not hear them: start again from the store.
    const offResync = ctx.store.subscribe(RESYNC_CHANNEL, () => this.#cache.clear());
    this.#unsubscribe = () => { offRevoked(); offResync(); };
    this.#probe = setInterval(() => void this.#checkStore(), HEALTH_INTERVAL_MS);
    this.#probe.unref();
  }

  /** True while the store is known to fail: sessions are then answered only by the store. */
  get storeDown(): boolean {
    return this.#storeDown;
  }

  async #checkStore(): Promise<void> {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    try {
      await this.#ctx.store.ping();
      if (this.#storeDown) {
        // Revocations broadcast during the outage may have been lost: start from the store.
        this.#storeDown = false;
        this.#cache.clear();
      }
    } catch {
      this.#markDown();
    } finally {
      this.#probing = false;
    }
  }

  #markDown(): void {
    this.#storeDown = true;
  }

  get cookieName(): string {
    return this.settings.cookieName;
  }

  cookieOptions(): SessionCookieOptions {
    return { path: '/', httpOnly: true, sameSite: 'lax', secure: this.settings.secure, maxAge: Math.floor(this.settings.absoluteMs / 1000) };
  }

  /** Loads the secrets (from config, or generated in the store). Fails closed when the store is down. */
  async signer(): Promise<SessionCookieSigner> {
    if (this.#signer !== undefined) return this.#signer;
    this.#signerLoading ??= loadSessionSecrets(this.#ctx).then(
      (secrets) => (this.#signer = new SessionCookieSigner(secrets)),
      (err: unknown) => {
        this.#signerLoading = undefined; // retry on the next request once the store is back
        throw err;
      },
    );
    return this.#signerLoading;
  }

  /**
   * The public session id inside a correctly signed cookie value (no store access, memoized by
   * the signer), else undefined. Throws StoreUnavailableError only when a generated secret cannot be read.
   */
  async sessionIdOf(cookieValue: string | undefined): Promise<string | undefined> {
    if (cookieValue === undefined || cookieValue === '') return undefined;
    const signer = this.#signer ?? (await this.signer());
    return signer.handleOf(cookieValue);
  }

  /**
   * `resolveCookie` answered from memory alone: the signer loaded, the session cached and not
   * idle by this instance's view, its user in memory (`peek`). Undefined when anything must be
   * read (the caller then awaits `resolveCookie`, which repeats these checks with the store).
   */
  resolveCookieNow(cookieValue: string): SessionLookup | undefined {
    const signer = this.#signer;
    if (signer === undefined || cookieValue === '') return undefined;
    const id = signer.handleOf(cookieValue);
    if (id === undefined) return ABSENT_CLEAR;
    const now = this.#now();
    const entry = this.#cache.get(id);
    if (entry === undefined || this.#storeDown || now - entry.lastSeen > this.settings.idleMs) return undefined;
    const record = entry.record;
    const needsUser = record.method === 'session' || record.oidc?.linked === true;
    const user = needsUser ? peekUser(this.#ctx.users, record.user) : undefined;
    if (user === NOT_IN_MEMORY) return undefined;
    // A changed user (password, groups) is re-checked on the asynchronous path.
    if (record.method === 'session' && user !== undefined && !user.disabled && entry.userVersion !== user.version) return undefined;
    // From here the same steps as resolveCookie: liveness and activity, then the user.
    if (this.#stillLive(entry, now) === undefined) return ABSENT_CLEAR;
    if (needsUser && (user === undefined || user.disabled)) {
      this.#expire(record);
      return ABSENT_CLEAR;
    }
    const session: SessionRecord = record.method === 'session' && user !== undefined
      ? { ...record, email: user.email, groups: user.groups, lastSeenAt: entry.lastSeen }
      : { ...record, lastSeenAt: entry.lastSeen };
    return session.pendingMfa !== undefined ? { kind: 'pending', session } : { kind: 'active', session };
  }

  /**
   * What a cookie value stands for. A bad signature is answered without any store access; a
   * store outage when a read is needed throws StoreUnavailableError (fail closed).
   */
  async resolveCookie(cookieValue: string | undefined): Promise<SessionLookup> {
    if (cookieValue === undefined) return ABSENT;
    const id = await this.sessionIdOf(cookieValue);
    if (id === undefined) return ABSENT_CLEAR;
    const entry = await this.#live(id);
    if (entry === undefined) return ABSENT_CLEAR;
    const session = await this.#current(entry);
    if (session === undefined) return ABSENT_CLEAR;
    return session.pendingMfa !== undefined ? { kind: 'pending', session } : { kind: 'active', session };
  }

  /** Starts a session with a new random id; returns the record and the cookie value to set. */
  async create(input: NewSession): Promise<{ session: SessionRecord; cookie: string }> {
    const signer = await this.signer();
    const secretId = signer.newId();
    const id = sessionHandle(secretId);
    const now = this.#now();
    const record: SessionRecord = {
      id,
      user: input.user,
      ...(input.email !== undefined ? { email: input.email } : {}),
      groups: [...input.groups],
      method: input.method,
      amr: [...input.amr],
      mfa: input.mfa,
      authTime: input.authTime ?? Math.floor(now / 1000),
      createdAt: now,
      lastSeenAt: now,
      ...(input.pendingMfa !== undefined ? { pendingMfa: { methods: [...input.pendingMfa.methods] } } : {}),
      ...(input.oidc !== undefined ? { oidc: { ...input.oidc } } : {}),
      ...(input.passwordHash !== undefined ? { credential: signer.fingerprint(input.passwordHash) } : {}),
      ...(input.ip !== undefined ? { ip: input.ip.slice(0, MAX_IP_LENGTH) } : {}),
      ...(input.userAgent !== undefined ? { userAgent: input.userAgent.slice(0, MAX_USER_AGENT_LENGTH) } : {}),
    };
    const { idleMs } = this.settings;
    const absoluteMs = lifetimeMs(record, this.settings);
    const store = this.#ctx.store;
    await Promise.all([
      store.set(recordKey(id), JSON.stringify(record), absoluteMs),
      store.set(seenKey(id), String(now), Math.min(idleMs, absoluteMs)),
      store.indexAdd(userIndexKey(input.user), id, absoluteMs),
      ...(input.oidc?.iss !== undefined ? [store.indexAdd(oidcIndexKey(input.oidc.iss, 'sub', input.oidc.sub), id, absoluteMs)] : []),
      ...(input.oidc?.iss !== undefined && input.oidc.sid !== undefined ? [store.indexAdd(oidcIndexKey(input.oidc.iss, 'sid', input.oidc.sid), id, absoluteMs)] : []),
    ]);
    this.#cache.set(id, { record, lastSeen: now, lastWrite: now });
    return { session: record, cookie: signer.sign(secretId) };
  }

  /** Ends a session on every instance: store records gone, caches evicted via pub/sub. */
  async destroy(id: string, user?: string): Promise<void> {
    this.#cache.delete(id);
    const store = this.#ctx.store;
    await Promise.all([
      store.delete(recordKey(id)),
      store.delete(seenKey(id)),
      user !== undefined ? store.indexRemove(userIndexKey(user), id) : Promise.resolve(),
    ]);
    await store.publish(REVOKED_CHANNEL, id);
  }

  /**
   * Ends the session a cookie stands for, if it is correctly signed (logout, and before a login:
   * THREATS 27 session fixation). Returns the ended session's id and user (when still stored),
   * or undefined when the cookie carried no correctly signed id.
   */
  async destroyByCookie(cookieValue: string | undefined): Promise<{ id: string; user: string | undefined; oidc?: OidcSessionInfo | undefined } | undefined> {
    const id = await this.sessionIdOf(cookieValue);
    if (id === undefined) return undefined;
    let record = this.#cache.peek(id)?.record;
    if (record === undefined) {
      const json = await this.#ctx.store.get(recordKey(id));
      record = json === null ? undefined : parseRecord(json, id);
    }
    await this.destroy(id, record?.user);
    return { id, user: record?.user, oidc: record?.oidc };
  }

  /**
   * Ends, on every instance, the sessions an OIDC provider's back-channel logout names: those of
   * one provider session (`sid`) or of one provider user (`sub`), both within issuer `iss`.
   * Returns the ended sessions' handles and users.
   */
  async destroyByOidc(iss: string, which: { sid?: string | undefined; sub?: string | undefined }): Promise<{ id: string; user: string }[]> {
    const store = this.#ctx.store;
    const indexes = [
      ...(which.sid !== undefined ? [oidcIndexKey(iss, 'sid', which.sid)] : []),
      ...(which.sub !== undefined ? [oidcIndexKey(iss, 'sub', which.sub)] : []),
    ];
    const ids = new Set<string>();
    for (const index of indexes) for (const id of await store.indexMembers(index)) ids.add(id);
    const ended: { id: string; user: string }[] = [];
    for (const id of ids) {
      const json = await store.get(recordKey(id));
      const record = json === null ? undefined : parseRecord(json, id);
      // Both claims given (sid and sub): only sessions matching both (Back-Channel Logout 1.0 §2.6).
      if (record?.oidc === undefined || record.oidc.iss !== iss) continue;
      if (which.sid !== undefined && record.oidc.sid !== which.sid) continue;
      if (which.sub !== undefined && record.oidc.sub !== which.sub) continue;
      await this.destroy(id, record.user);
      ended.push({ id, user: record.user });
    }
    for (const index of indexes) for (const { id } of ended) await store.indexRemove(index, id);
    return ended;
  }

  /** Ends every session of a user (e.g. back-channel logout, an administrator's revocation). */
  async destroyUser(user: string): Promise<number> {
    const ids = await this.#ctx.store.indexMembers(userIndexKey(user));
    await Promise.all(ids.map((id) => this.destroy(id, user)));
    return ids.length;
  }

  /**
   * A user's live sessions on every instance (SPEC 6 GET /sessions), oldest first: read from the
   * store, since other instances' activity is there. Pending (half signed-in) and expired sessions
   * are left out; index entries whose record is gone are removed on the way.
   */
  async listForUser(user: string): Promise<SessionRecord[]> {
    const store = this.#ctx.store;
    const index = userIndexKey(user);
    const now = this.#now();
    const { idleMs, absoluteMs } = this.settings;
    const ids = await store.indexMembers(index);
    const found = await Promise.all(ids.map(async (id) => ({ id, entry: await this.#fetch(id) })));
    const out: SessionRecord[] = [];
    for (const { id, entry } of found) {
      if (entry === undefined || entry.record.user !== user) {
        await store.indexRemove(index, id);
        continue;
      }
      // This instance may know of more recent activity than the store (writes are throttled).
      const lastSeen = Math.max(entry.lastSeen, this.#cache.peek(id)?.lastSeen ?? 0);
      if (now >= entry.record.createdAt + absoluteMs || now - lastSeen > idleMs || entry.record.pendingMfa !== undefined) continue;
      out.push({ ...entry.record, lastSeenAt: lastSeen });
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /**
   * Ends one of `user`'s sessions by its public handle (SPEC 6 DELETE /sessions/:id), on every
   * instance. False when no such session belongs to the user: another user's handle ends nothing.
   */
  async destroyForUser(user: string, id: string): Promise<boolean> {
    const json = await this.#ctx.store.get(recordKey(id));
    if (json === null || parseRecord(json, id)?.user !== user) return false;
    await this.destroy(id, user);
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#probe);
    this.#unsubscribe();
    this.#cache.clear();
  }

  /** The cache entry of a live session (timeouts checked, activity recorded), else undefined. */
  async #live(id: string): Promise<CacheEntry | undefined> {
    const now = this.#now();
    const { idleMs } = this.settings;
    let entry = this.#cache.get(id);
    // Idle by this instance's view: another instance may have seen activity, so ask the store.
    if (entry === undefined || this.#storeDown || now - entry.lastSeen > idleMs) {
      try {
        entry = await this.#cache.fetch(id, { forceRefresh: true });
      } catch (err) {
        if (err instanceof GatewayError) {
          this.#markDown();
          throw err;
        }
        // The fill was aborted (revoked or evicted meanwhile): ask the store again, uncached.
        entry = await this.#fetch(id);
      }
    }
    if (entry === undefined) return undefined;
    return this.#stillLive(entry, now);
  }

  /** Ends a session past its lifetime or idle timeout; otherwise records the activity (written at most every writeIntervalMs). */
  #stillLive(entry: CacheEntry, now: number): CacheEntry | undefined {
    const { idleMs } = this.settings;
    const id = entry.record.id;
    if (now >= entry.record.createdAt + lifetimeMs(entry.record, this.settings) || now - entry.lastSeen > idleMs) {
      this.#expire(entry.record);
      return undefined;
    }
    entry.lastSeen = now;
    if (now - entry.lastWrite >= this.settings.writeIntervalMs) {
      entry.lastWrite = now;
      const ttl = Math.min(idleMs, entry.record.createdAt + lifetimeMs(entry.record, this.settings) - now);
      // Fire and forget: a lost write only makes the idle timeout come a little early.
      this.#ctx.store.set(seenKey(id), String(now), ttl).catch((err: unknown) => {
        this.#markDown();
        this.#ctx.log.debug({ session: id, err: errorMessage(err) }, 'session activity not recorded');
      });
    }
    return entry;
  }

  /** Reads a session from the store (cache fill). Throws StoreUnavailableError when down. */
  async #fetch(id: string): Promise<CacheEntry | undefined> {
    const [json, seen] = await Promise.all([this.#ctx.store.get(recordKey(id)), this.#ctx.store.get(seenKey(id))]);
    if (json === null) return undefined;
    const record = parseRecord(json, id);
    if (record === undefined) return undefined;
    // No activity key: idle past its TTL. lastSeen 0 makes #live expire the record.
    const lastSeen = seen === null ? 0 : Number(seen);
    const at = Number.isFinite(lastSeen) ? lastSeen : 0;
    return { record, lastSeen: at, lastWrite: at };
  }

  /**
   * The session as an identity source right now: password sessions follow the user directory
   * (disabled or removed user, or a changed password → the session ends; current groups/email).
   */
  async #current(entry: CacheEntry): Promise<SessionRecord | undefined> {
    const record = entry.record;
    if (record.method !== 'session') {
      // An OIDC identity linked to a local user ends with that user (the directory is cached in memory).
      if (record.oidc?.linked === true) {
        const user = await this.#ctx.users.get(record.user);
        if (user === undefined || user.disabled) {
          this.#expire(record);
          return undefined;
        }
      }
      return { ...record, lastSeenAt: entry.lastSeen };
    }
    const user = await this.#ctx.users.get(record.user);
    if (user === undefined || user.disabled) {
      this.#expire(record);
      return undefined;
    }
    if (entry.userVersion !== user.version) {
      if (record.credential !== undefined) {
        const signer = this.#signer ?? (await this.signer());
        if (user.passwordHash === undefined || !signer.fingerprintMatches(user.passwordHash, record.credential)) {
          this.#expire(record);
          return undefined;
        }
      }
      entry.userVersion = user.version;
    }
    return { ...record, email: user.email, groups: user.groups, lastSeenAt: entry.lastSeen };
  }

  /** Removes an expired or invalidated session in the background. */
  #expire(record: SessionRecord): void {
    this.#cache.delete(record.id);
    this.destroy(record.id, record.user).catch((err: unknown) => {
      this.#ctx.log.debug({ session: record.id, err: errorMessage(err) }, 'expired session not removed');
    });
  }
}

/** The absolute lifetime of a session: a pending (pre-MFA) one ends after 5 minutes. */
function lifetimeMs(record: SessionRecord, settings: SessionSettings): number {
  return record.pendingMfa !== undefined ? Math.min(PENDING_MFA_TTL_MS, settings.absoluteMs) : settings.absoluteMs;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** A stored record, checked field by field; anything malformed counts as no session. */
function parseRecord(json: string, id: string): SessionRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (r.id !== id || typeof r.user !== 'string' || typeof r.method !== 'string' || typeof r.mfa !== 'boolean') return undefined;
  if (!isStringArray(r.groups) || !isStringArray(r.amr)) return undefined;
  if (typeof r.authTime !== 'number' || typeof r.createdAt !== 'number' || typeof r.lastSeenAt !== 'number') return undefined;
  if (r.email !== undefined && typeof r.email !== 'string') return undefined;
  if (r.credential !== undefined && typeof r.credential !== 'string') return undefined;
  if ((r.ip !== undefined && typeof r.ip !== 'string') || (r.userAgent !== undefined && typeof r.userAgent !== 'string')) return undefined;
  if (r.pendingMfa !== undefined) {
    const p = r.pendingMfa as { methods?: unknown } | null;
    if (typeof p !== 'object' || p === null || !isStringArray(p.methods)) return undefined;
  }
  if (r.oidc !== undefined) {
    const o = r.oidc as { provider?: unknown; sub?: unknown; sid?: unknown } | null;
    if (typeof o !== 'object' || o === null || typeof o.provider !== 'string' || typeof o.sub !== 'string') return undefined;
    if (o.sid !== undefined && typeof o.sid !== 'string') return undefined;
  }
  return r as unknown as SessionRecord;
}

const sharedSessions = refCounted((ctx: GatewayContext) => new SessionService(ctx), (service) => service.close());

/**
 * The session service of a loaded config, shared by the `session` authenticator and the login,
 * MFA and OIDC endpoints so a logout evicts the very cache the proxy reads. Each holder calls
 * `release` when its runtime is replaced or the gateway stops; the last one closes the service.
 */
export function acquireSessionService(ctx: GatewayContext): { service: SessionService; release: () => void } {
  const held = sharedSessions(ctx);
  return { service: held.value, release: held.release };
}
