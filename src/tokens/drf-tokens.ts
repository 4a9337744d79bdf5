// DRF TokenAuthentication keys (SPEC 3.2, `type: token, source: django`): `authtoken_token` keeps
// the key in clear, so the row found is compared in constant time with what was presented, and
// the cache is keyed by a keyed hash (the key itself is never kept, logged or used as a map key).
// Found keys are cached for users.postgres.cacheTtl (a deleted token stops within it), unknown
// ones briefly; the user comes from the directory's by-id cache, so a warm request makes no
// database round trip.
import { LRUCache } from 'lru-cache';
import type { GatewayContext, UserRecord } from '../context.js';
import type { DrfTokenRow, PostgresUserDirectory } from '../credentials/postgres-users.js';
import type { ErrorCode } from '../errors.js';
import { credentialCacheKey, keyedHash, safeEqual } from '../util/secure.js';

/** rest_framework.authtoken.models.Token.generate_key: 20 random bytes as hex. */
const DRF_KEY = /^[0-9a-f]{40}$/;
const MAX_CACHED = 10_000;
const NEGATIVE_TTL_MS = 5000;

export const isDrfKey = (key: string): boolean => DRF_KEY.test(key);

export type DrfVerdict = { ok: true; user: UserRecord; row: Omit<DrfTokenRow, 'key'>; handle: string } | { ok: false; code: ErrorCode };

interface CachedToken {
  readonly userId: string;
  readonly created: number;
  readonly handle: string;
}

export class DrfTokens {
  readonly #db: PostgresUserDirectory;
  readonly #ctx: GatewayContext;
  readonly #cache: LRUCache<string, CachedToken | false>;
  readonly #ttlMs: number;
  readonly #cacheKeyOf: (key: string) => string;

  constructor(db: PostgresUserDirectory, ctx: GatewayContext) {
    this.#db = db;
    this.#ctx = ctx;
    this.#ttlMs = db.cacheTtlMs;
    this.#cache = new LRUCache({ max: MAX_CACHED, ttl: Math.max(1, this.#ttlMs) });
    this.#cacheKeyOf = credentialCacheKey(ctx.cacheKey, 'drf-token');
  }

  /** Throws StoreUnavailableError when the Django database is down (the caller fails closed). */
  async verify(key: string): Promise<DrfVerdict> {
    const cacheKey = this.#cacheKeyOf(key);
    let token = this.#ttlMs > 0 ? this.#cache.get(cacheKey) : undefined;
    this.#ctx.metrics?.cache.inc('drf-token', token === undefined ? 'miss' : token === false ? 'negative_hit' : 'hit');
    if (token === undefined) {
      const row = await this.#db.drfToken(key);
      // The index lookup found it; the comparison that decides is constant time.
      token = row && safeEqual(row.key, key) ? { userId: row.userId, created: row.created, handle: `drf_${keyedHash(this.#ctx.cacheKey, 'drf-token', key).slice(0, 22)}` } : false;
      if (this.#ttlMs > 0) this.#cache.set(cacheKey, token, token === false ? { ttl: Math.min(this.#ttlMs, NEGATIVE_TTL_MS) } : undefined);
    }
    if (token === false) return { ok: false, code: 'invalid_token' };
    const user = await this.#db.getById(token.userId);
    // DRF's authenticate_credentials: an inactive user's token is refused.
    if (!user || user.record.disabled) return { ok: false, code: 'invalid_token' };
    return { ok: true, user: user.record, row: { userId: token.userId, created: token.created }, handle: token.handle };
  }

  /** Drop cached keys (e.g. after users:changed). */
  clear(): void {
    this.#cache.clear();
  }
}
