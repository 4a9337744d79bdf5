// `django-session`: a running Django site's `sessionid` cookie (SPEC 3.2). The cookie names a
// django_session row; its signed session_data names the user (`_auth_user_id`) and carries
// `_auth_user_hash`, which must equal Django's get_session_auth_hash() of the user's CURRENT
// password hash — so a password change logs out here exactly as at Django. A cookie with no live
// row counts as absent (chain goes on, cookie cleared, like the gateway's own session); a session
// without a signed-in user is Django's business (absent, cookie kept); a forged session, a stale
// user hash, a deleted or inactive user is refused. Rows are cached (bounded, at most
// users.postgres.cacheTtl and never past expire_date) by a keyed hash of the key, so a warm
// request makes no database round trip.
import { LRUCache } from 'lru-cache';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import { decodeSessionData, djangoSecretKeys, sessionAuthHashMatches } from '../../credentials/django.js';
import type { DjangoUser, PostgresUserDirectory } from '../../credentials/postgres-users.js';
import { djangoDatabase } from '../../credentials/users.js';
import { NOT_IN_MEMORY, type GatewayContext } from '../../context.js';
import { StoreUnavailableError } from '../../errors.js';
import { credentialCacheKey, keyedHash } from '../../util/secure.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest } from '../types.js';

export const DJANGO_SESSION_COOKIE = 'sessionid';
/** Django's session keys are 32 of [a-z0-9]; it accepts any of at least 8. */
const SESSION_KEY = /^[a-z0-9]{8,64}$/;
const MAX_CACHED_SESSIONS = 10_000;

type SessionEntry =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'forged' }
  | {
      readonly kind: 'user';
      readonly userId: string;
      readonly authHash: string;
      readonly expires: number;
      /** Identity.sessionId: a handle, never the key. */
      readonly handle: string;
      /** The user object whose password the hash was last checked against (directory objects are frozen per load). */
      verifiedFor?: DjangoUser;
    };

/** The Django database behind users.postgres, or a config error naming the authenticator. */
export function requireDjangoDatabase(ctx: GatewayContext, name: string): PostgresUserDirectory {
  const db = djangoDatabase(ctx.users);
  if (!db) throw new Error(`authenticators.${name}: reads the Django database; set users.postgres (preset: django)`);
  return db;
}

export function createDjangoSessionAuthenticator(name: string, cfg: AuthenticatorConfigOf<'django-session'>, ctx: GatewayContext): Authenticator {
  const db = requireDjangoDatabase(ctx, name);
  const keys = djangoSecretKeys(ctx.config, ctx.configDir);
  if (keys.length === 0) throw new Error(`authenticators.${name}: needs django.secretKey`);
  const cookieName = cfg.cookie ?? DJANGO_SESSION_COOKIE;
  const ttlMs = db.cacheTtlMs;
  const cache = new LRUCache<string, SessionEntry>({ max: MAX_CACHED_SESSIONS, ttl: Math.max(1, ttlMs) });
  const cacheKeyOf = credentialCacheKey(ctx.cacheKey, 'django-session');
  // A user changed (users:changed on any instance): re-read every session's user and row.
  const unsubscribe = ctx.users.onChange(() => cache.clear());

  async function load(sessionKey: string): Promise<SessionEntry | undefined> {
    const row = await db.djangoSession(sessionKey);
    if (!row) return undefined;
    const decoded = decodeSessionData(row.data, keys);
    let entry: SessionEntry;
    if (!decoded.ok) entry = { kind: 'forged' };
    else {
      const { _auth_user_id: userId, _auth_user_hash: authHash } = decoded.data;
      if (userId === undefined) entry = { kind: 'anonymous' };
      // Django's get_user: no hash, or not a string, never verifies.
      else if (typeof userId !== 'string' || typeof authHash !== 'string') entry = { kind: 'forged' };
      else entry = { kind: 'user', userId, authHash, expires: Math.floor(row.expires), handle: `dj_${keyedHash(ctx.cacheKey, 'django-session-handle', sessionKey).slice(0, 22)}` };
    }
    if (ttlMs > 0) {
      const untilExpiry = row.expires * 1000 - Date.now();
      if (untilExpiry > 0) cache.set(cacheKeyOf(sessionKey), entry, { ttl: Math.min(ttlMs, Math.ceil(untilExpiry)) });
    }
    return entry;
  }

  /**
   * Answered synchronously when the row and its user are both in memory (a warm request: no
   * promise); otherwise the database is asked.
   */
  function authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    const sessionKey = request.cookies[cookieName];
    if (sessionKey === undefined) return NOT_MINE;
    if (!SESSION_KEY.test(sessionKey)) {
      request.clearCookie?.(cookieName);
      return NOT_MINE;
    }
    const entry = ttlMs > 0 ? cache.get(cacheKeyOf(sessionKey)) : undefined;
    ctx.metrics?.cache.inc('django-session', entry ? 'hit' : 'miss');
    if (entry !== undefined && entry.kind !== 'user') return conclude(request, entry, undefined);
    if (entry !== undefined) {
      const user = db.peekById(entry.userId);
      if (user !== NOT_IN_MEMORY) return conclude(request, entry, user);
    }
    return lookUp(request, sessionKey, entry);
  }

  async function lookUp(request: AuthRequest, sessionKey: string, cached: SessionEntry | undefined): Promise<AuthOutcome> {
    let entry = cached;
    let user: DjangoUser | undefined;
    try {
      entry ??= await load(sessionKey);
      if (entry?.kind === 'user') user = await db.getById(entry.userId);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return rejected('store_unavailable');
      throw err;
    }
    return conclude(request, entry, user);
  }

  function conclude(request: AuthRequest, entry: SessionEntry | undefined, user: DjangoUser | undefined): AuthOutcome {
    if (entry === undefined) {
      // No live row (expired, logged out, never existed): absent, as for the gateway's own cookie.
      request.clearCookie?.(cookieName);
      return NOT_MINE;
    }
    if (entry.kind === 'anonymous') return NOT_MINE;
    // Django flushes such a session (get_user); the browser starts clean.
    const refuse = (detail: string): AuthOutcome => {
      request.clearCookie?.(cookieName);
      return rejected('invalid_credentials', detail);
    };
    if (entry.kind === 'forged') return refuse('The session is not valid.');
    if (user === undefined || user.record.disabled) return refuse('The session user is no longer active.');
    if (entry.verifiedFor !== user) {
      if (!sessionAuthHashMatches(entry.authHash, user.password, keys)) return refuse('The session ended: the password changed.');
      entry.verifiedFor = user;
    }
    const record = user.record;
    return authenticated({
      user: record.username,
      email: record.email,
      groups: record.groups,
      scopes: [],
      method: 'django-session',
      authenticator: name,
      mfa: false,
      amr: ['pwd'],
      // Django keeps no sign-in time in the session: 0 means "unknown", so require.maxAge never passes on it.
      authTime: 0,
      subject: record.username,
      sessionId: entry.handle,
      expiresAt: entry.expires,
    });
  }

  return {
    name,
    type: 'django-session',
    authenticate,
    close: unsubscribe,
  };
}
