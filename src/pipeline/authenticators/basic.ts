// `basic`: HTTP Basic (RFC 7617) against the user directory. Mine: an `Authorization` header
// whose scheme is Basic. A correct user:password is checked by the slow hash once, then answered
// from a bounded cache keyed by an HMAC of the credentials, valid only while the user's record
// (version, disabled) is unchanged and the account is not locked. Basic cannot carry a second
// factor: a user who must use MFA is refused (mfa_required), on cache hits too (issue 9.13).
import { LRUCache } from 'lru-cache';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import { NOT_IN_MEMORY, peekUser, type GatewayContext, type LockState, type PasswordCheck, type UserRecord } from '../../context.js';
import { StoreUnavailableError } from '../../errors.js';
import { verifyLogin, type VerifyLoginOptions } from '../../credentials/login.js';
import { MAX_PASSWORD_BYTES } from '../../credentials/passwords.js';
import { durationMs } from '../../util/duration.js';
import { credentialCacheKey } from '../../util/secure.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Rejected } from '../types.js';

export const DEFAULT_REALM = 'authgate';
const MAX_USERNAME_LENGTH = 254;
/** Base64 of the longest user:password we would ever check; anything longer is refused unread. */
const MAX_ENCODED_LENGTH = Math.ceil(((MAX_USERNAME_LENGTH * 4 + 1 + MAX_PASSWORD_BYTES) * 4) / 3) + 4;
const TOKEN68_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export type BasicCredentials = { username: string; password: string };

/**
 * Parses an Authorization header: undefined when it is not Basic (not mine), 'invalid' when it
 * is Basic but malformed (THREATS 23), else the credentials split at the first colon.
 */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | 'invalid' | undefined {
  if (header === undefined) return undefined;
  const space = header.search(/[ \t]/);
  const scheme = space < 0 ? header : header.slice(0, space);
  if (scheme.toLowerCase() !== 'basic') return undefined;
  if (space < 0 || header[space] !== ' ') return 'invalid';
  // Exactly one space, then one strict base64 token: "Basic  x" and "Basic x, Bearer y" are refused.
  const encoded = header.slice(space + 1);
  if (encoded.length > MAX_ENCODED_LENGTH || !TOKEN68_BASE64.test(encoded)) return 'invalid';
  const padded = encoded.includes('=');
  if ((padded && encoded.length % 4 !== 0) || (!padded && encoded.length % 4 === 1)) return 'invalid';
  const bytes = Buffer.from(encoded, 'base64');
  // Canonical encoding only (no stray trailing bits that decode to the same bytes).
  if (bytes.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) return 'invalid';
  let decoded: string;
  try {
    decoded = utf8.decode(bytes);
  } catch {
    return 'invalid';
  }
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'invalid';
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (username.length === 0 || username.length > MAX_USERNAME_LENGTH || CONTROL.test(username)) return 'invalid';
  if (password.length === 0) return 'invalid';
  return { username, password };
}

export interface BasicAuthenticatorOptions extends VerifyLoginOptions {
  /** Verified credentials kept (default 10,000). */
  readonly cacheMax?: number;
  /** Concurrent distinct verifications that are coalesced (default 1,000; beyond it they run uncoalesced). */
  readonly inFlightMax?: number;
  /** How long a lockout check is reused on cache hits (default 1 s, the SPEC's propagation bound). */
  readonly lockMemoMs?: number;
}

interface CachedVerification {
  readonly username: string;
  readonly version: string;
}

type LockMemo = { locked: false } | { locked: true; until: number };

export interface BasicAuthenticator extends Authenticator {
  /** Cache and in-flight sizes (tests, metrics). */
  stats(): { cached: number; inFlight: number; lockMemo: number };
}

export function createBasicAuthenticator(
  name: string,
  cfg: AuthenticatorConfigOf<'basic'>,
  ctx: GatewayContext,
  opts: BasicAuthenticatorOptions = {},
): BasicAuthenticator {
  const realm = cfg.realm ?? DEFAULT_REALM;
  const challengeValue = `Basic realm="${realm}", charset="UTF-8"`;
  const cacheTtlMs = durationMs(cfg.cacheTtl, '60s');
  const cache = cacheTtlMs > 0 ? new LRUCache<string, CachedVerification>({ max: opts.cacheMax ?? 10_000, ttl: cacheTtlMs }) : undefined;
  const inFlight = new Map<string, Promise<PasswordCheck>>();
  const inFlightMax = opts.inFlightMax ?? 1000;
  // Cache hits must honour a lockout, but not pay a store round trip each: the lock state of an
  // (account, address) pair is reused for at most lockMemoMs, which is how long a lockout set
  // on another instance may take to apply to cached credentials here.
  const lockMemo = new LRUCache<string, LockMemo>({ max: opts.cacheMax ?? 10_000, ttl: Math.max(1, opts.lockMemoMs ?? 1000) });
  const verifyOptions: VerifyLoginOptions = { method: 'basic', ...(opts.verify ? { verify: opts.verify } : {}) };

  const memoKey = (username: string, ip: string): string => `${username.toLowerCase()}\u0000${ip}`;
  const lockedRejection = (retryAfterSeconds: number): Rejected => rejected('locked', undefined, { 'Retry-After': String(Math.max(1, retryAfterSeconds)) });

  const identityOf = (user: UserRecord): AuthOutcome =>
    user.mfaRequired
      ? rejected('mfa_required', 'This account requires a second factor, which HTTP Basic cannot carry; sign in instead.')
      : authenticated({
          user: user.username,
          email: user.email,
          groups: user.groups,
          scopes: [],
          method: 'basic',
          authenticator: name,
          mfa: false,
          amr: ['pwd'],
          authTime: Math.floor(Date.now() / 1000),
          subject: user.username,
        });

  async function lockStateFor(username: string, ip: string): Promise<LockState> {
    const key = memoKey(username, ip);
    const memo = lockMemo.get(key);
    if (memo) {
      if (!memo.locked) return memo;
      const left = memo.until - Date.now();
      if (left > 0) return { locked: true, retryAfterSeconds: Math.ceil(left / 1000) };
    }
    const state = await ctx.lockout.check(username, ip); // the resolved username (lockout.ts)
    lockMemo.set(key, state.locked ? { locked: true, until: Date.now() + state.retryAfterSeconds * 1000 } : { locked: false });
    return state;
  }

  /** A cached verification, if it still stands; undefined sends the request to the slow path. */
  async function fromCache(cacheKey: string, hit: CachedVerification, username: string, ip: string): Promise<AuthOutcome | undefined> {
    const user = await ctx.users.get(hit.username);
    if (!user || user.disabled || user.version !== hit.version) {
      cache?.delete(cacheKey);
      return undefined;
    }
    let lock: LockState;
    try {
      lock = await lockStateFor(user.username, ip);
    } catch (err) {
      // SPEC 8: with the store down, credentials already proven against the users file keep
      // working; nothing new is guessed (a miss still fails closed below).
      if (err instanceof StoreUnavailableError) return identityOf(user);
      throw err;
    }
    if (lock.locked) return lockedRejection(lock.retryAfterSeconds);
    return identityOf(user);
  }

  function verifyOnce(cacheKey: string, username: string, password: string, ip: string): Promise<PasswordCheck> {
    const flightKey = `${cacheKey}\u0000${ip}`;
    const pending = inFlight.get(flightKey);
    if (pending) return pending;
    const run = verifyLogin(ctx, username, password, ip, verifyOptions).then((check) => {
      const key = memoKey(check.ok ? check.user.username : username, ip);
      if (check.ok) {
        cache?.set(cacheKey, { username: check.user.username, version: check.user.version });
        lockMemo.set(key, { locked: false });
      } else {
        lockMemo.delete(key);
      }
      return check;
    });
    if (inFlight.size < inFlightMax) {
      inFlight.set(flightKey, run);
      const done = (): void => void inFlight.delete(flightKey);
      run.then(done, done);
    }
    return run;
  }

  // The cache is keyed by the exact Authorization header (so a hit skips parsing too); a header
  // is only ever cached after it was parsed and its password verified.
  const cacheKeyOf = credentialCacheKey(ctx.cacheKey, 'basic');

  /**
   * A cached verification answered without waiting: the user from memory (`peek`) and a lock
   * state remembered within lockMemoMs. Undefined when something must be looked up.
   */
  function fromCacheNow(hit: CachedVerification, ip: string): AuthOutcome | undefined {
    const user = peekUser(ctx.users, hit.username);
    if (user === NOT_IN_MEMORY) return undefined;
    if (!user || user.disabled || user.version !== hit.version) return undefined; // the slow path drops it
    const memo = lockMemo.get(memoKey(user.username, ip));
    if (memo === undefined) return undefined;
    if (!memo.locked) return identityOf(user);
    const left = memo.until - Date.now();
    return left > 0 ? lockedRejection(Math.ceil(left / 1000)) : undefined;
  }

  /** Synchronous for a warm credential (cached, user in memory, lock state remembered). */
  function authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    const header = request.headers.authorization;
    if (header === undefined) return NOT_MINE;
    let cacheKey: string | undefined;
    if (cache !== undefined && header.startsWith('Basic ')) {
      cacheKey = cacheKeyOf(header);
      const hit = cache.get(cacheKey);
      const warm = hit === undefined ? undefined : fromCacheNow(hit, request.ip);
      if (warm !== undefined) {
        ctx.metrics?.cache.inc('basic', 'hit');
        return warm;
      }
    }
    const parsed = parseBasicAuthorization(header);
    if (parsed === undefined) return NOT_MINE;
    if (parsed === 'invalid') return rejected('invalid_credentials', 'Malformed Basic credentials.');
    return authenticateSlow(request, cacheKey ?? cacheKeyOf(header), parsed);
  }

  async function authenticateSlow(request: AuthRequest, cacheKey: string, { username, password }: BasicCredentials): Promise<AuthOutcome> {
    try {
      const hit = cache?.get(cacheKey);
      if (hit) {
        const outcome = await fromCache(cacheKey, hit, username, request.ip);
        if (outcome) {
          ctx.metrics?.cache.inc('basic', 'hit');
          return outcome;
        }
      }
      ctx.metrics?.cache.inc('basic', 'miss');
      const check = await verifyOnce(cacheKey, username, password, request.ip);
      if (check.ok) return identityOf(check.user);
      if (check.code === 'locked') return lockedRejection(check.retryAfterSeconds ?? 1);
      return rejected(check.code === 'store_unavailable' ? 'store_unavailable' : 'invalid_credentials');
    } catch (err) {
      if (err instanceof StoreUnavailableError) return rejected('store_unavailable');
      throw err;
    }
  }

  return {
    name,
    type: 'basic',
    authenticate,
    challenge: () => challengeValue,
    stats: () => ({ cached: cache?.size ?? 0, inFlight: inFlight.size, lockMemo: lockMemo.size }),
    close: () => {
      cache?.clear();
      lockMemo.clear();
    },
  };
}
