// Opaque API tokens (DRF TokenAuthentication, SPEC 1 and 6). A token is
// `<prefix><43 base62 chars: 256 random bits><6 base62 chars: CRC32 of the random part>`, so
// secret scanners can recognise it and a mistyped or made-up token is refused without a store
// round trip. The store keeps only sha256(token): the token has 256 bits of entropy, so a fast
// unkeyed hash is as good as a slow one, and every instance can compute it.
//
// Store layout (the redis driver adds its own key prefix):
//   apitoken:h:<sha256 hex>  -> JSON ApiTokenRecord (a revoked token keeps a tombstone with
//                               revokedAt, so callers get `token_revoked` rather than `invalid_token`)
//   apitoken:id:<id>         -> sha256 hex (revoke and list by id)
//   apitoken:used:<id>       -> lastUsedAt, epoch seconds (kept apart from the record so a
//                               lastUsedAt write can never overwrite a revocation tombstone)
//   index apitoken:user:<user> -> ids of the user's tokens
//
// Hot path: an in-process LRU (token hash -> record, 30 s) and a negative LRU (10 s) answer most
// lookups; a revocation is broadcast on `tokens:revoked` and evicts the entry on every instance.
import { randomBytes, randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.js';
import { NOT_IN_MEMORY, peekUser, type GatewayContext, type UserRecord } from '../context.js';
import { audit, type AuditOrigin } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import { RESYNC_CHANNEL, type Store } from '../store/types.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import { durationMs } from '../util/duration.js';
import { refCounted } from '../util/ref-counted.js';
import { sha256Hex } from '../util/secure.js';

export const DEFAULT_TOKEN_PREFIX = 'agt_';
export const DEFAULT_TOKEN_TTL = '90d';
/** The longest lifetime a token may be given (POST /tokens, CLI). */
export const MAX_TOKEN_TTL_MS = 365 * 86_400_000;
/** Active tokens one user may hold; keeps listing and the per-user index small. */
export const MAX_TOKENS_PER_USER = 100;
export const REVOKED_CHANNEL = 'tokens:revoked';

/** Expired and revoked records are kept this long after expiry so callers get a precise error code. */
const RETAIN_AFTER_EXPIRY_MS = 7 * 86_400_000;
const LAST_USED_INTERVAL_MS = 60_000;
const POSITIVE_CACHE_TTL_MS = 30_000;
const NEGATIVE_CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_CHARS = 43; // 62^43 > 2^256
const CHECKSUM_CHARS = 6; // 62^6 > 2^32
const TOKEN_BODY_RE = new RegExp(`^[0-9A-Za-z]{${RANDOM_CHARS + CHECKSUM_CHARS}}$`);
/** Scope tokens as RFC 6749 3.3 allows them, kept short. */
export const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]{1,64}$/;

export interface ApiTokenRecord {
  readonly id: string;
  readonly user: string;
  readonly name: string;
  readonly scopes: readonly string[];
  /** Epoch seconds. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt?: number | undefined;
  /**
   * Epoch seconds of the sign-in behind the token (issue 9.9): a token minted from a session
   * is no fresher than that session. Absent in records written before it existed (read as 0).
   */
  readonly authTime?: number | undefined;
}

export interface ApiTokenInfo {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly string[];
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly lastUsedAt: number | null;
}

export interface CreatedApiToken {
  readonly id: string;
  /** The secret, returned only here. */
  readonly token: string;
  readonly name: string;
  readonly scopes: readonly string[];
  readonly createdAt: number;
  readonly expiresAt: number;
}

export type TokenLookup =
  | { readonly status: 'active'; readonly record: ApiTokenRecord }
  | { readonly status: 'expired'; readonly record: ApiTokenRecord }
  | { readonly status: 'revoked'; readonly record: ApiTokenRecord }
  | { readonly status: 'unknown' };

export type TokenVerification =
  | { readonly ok: true; readonly record: ApiTokenRecord; readonly user: UserRecord }
  | { readonly ok: false; readonly code: ErrorCode };

export interface ApiTokenDeps {
  readonly store: Store;
  readonly config: Pick<Config, 'tokens'>;
  readonly log?: Pick<FastifyBaseLogger, 'warn'> | undefined;
  readonly metrics?: Pick<Metrics, 'cache'> | undefined;
  /**
   * Where `token.created` / `token.revoked` go (SPEC 7): `audit` when set (a gateway context's
   * `audit.destination`), else `log` when it can write info lines. Neither: no audit line.
   */
  readonly audit?: Pick<FastifyBaseLogger, 'info'> | undefined;
}

export interface ApiTokenOptions {
  /** Clock in epoch milliseconds (tests). */
  readonly now?: () => number;
}

function base62(bytes: Buffer, width: number): string {
  let n = BigInt(`0x${bytes.toString('hex') || '0'}`);
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[Number(n % 62n)]! + out;
    n /= 62n;
  }
  return out;
}

function checksum(randomPart: string): string {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(crc32(randomPart) >>> 0);
  return base62(buf, CHECKSUM_CHARS);
}

/**
 * A token this gateway could have issued: a prefix, the random part and its matching checksum.
 * Any prefix is accepted here, so tokens keep working after `tokens.prefix` changes.
 */
export function isWellFormedToken(key: string): boolean {
  if (key.length < RANDOM_CHARS + CHECKSUM_CHARS + 2 || key.length > RANDOM_CHARS + CHECKSUM_CHARS + 16) return false;
  const body = key.slice(-(RANDOM_CHARS + CHECKSUM_CHARS));
  if (!TOKEN_BODY_RE.test(body)) return false;
  if (!/^[A-Za-z0-9_]{2,16}$/.test(key.slice(0, key.length - body.length))) return false;
  return checksum(body.slice(0, RANDOM_CHARS)) === body.slice(RANDOM_CHARS);
}

/** The configured token prefix (`tokens.prefix`, default agt_). */
export const tokenPrefix = (config: Pick<Config, 'tokens'>): string => config.tokens?.prefix ?? DEFAULT_TOKEN_PREFIX;

/** sha256 hex of a token: the only form in which a token is stored, cached or broadcast. */
export function hashToken(token: string): string {
  return sha256Hex(token);
}

const isRecord = (v: unknown): v is ApiTokenRecord => {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.id === 'string' &&
    typeof r.user === 'string' &&
    typeof r.name === 'string' &&
    Array.isArray(r.scopes) &&
    r.scopes.every((s) => typeof s === 'string') &&
    typeof r.createdAt === 'number' &&
    typeof r.expiresAt === 'number' &&
    (r.revokedAt === undefined || typeof r.revokedAt === 'number') &&
    (r.authTime === undefined || typeof r.authTime === 'number')
  );
};

export class ApiTokenService {
  readonly prefix: string;
  readonly defaultTtlMs: number;
  private readonly store: Store;
  private readonly log: Pick<FastifyBaseLogger, 'warn'> | undefined;
  private readonly auditLog: Pick<FastifyBaseLogger, 'info'> | undefined;
  private readonly metrics: Pick<Metrics, 'cache'> | undefined;
  private readonly now: () => number;
  private readonly positive = new LRUCache<string, ApiTokenRecord>({ max: CACHE_MAX, ttl: POSITIVE_CACHE_TTL_MS });
  private readonly negative = new LRUCache<string, true>({ max: CACHE_MAX, ttl: NEGATIVE_CACHE_TTL_MS });
  private readonly lastUsedWrites = new LRUCache<string, true>({ max: CACHE_MAX, ttl: LAST_USED_INTERVAL_MS });
  private readonly inflight = new Map<string, Promise<ApiTokenRecord | null>>();
  /** Bumped by every revocation message: a store read that started before it is not cached. */
  private generation = 0;
  private readonly unsubscribe: () => void;

  constructor(deps: ApiTokenDeps, options: ApiTokenOptions = {}) {
    this.store = deps.store;
    this.log = deps.log;
    this.auditLog = deps.audit ?? (deps.log !== undefined && 'info' in deps.log ? (deps.log as Pick<FastifyBaseLogger, 'info'>) : undefined);
    this.metrics = deps.metrics;
    this.now = options.now ?? Date.now;
    this.prefix = tokenPrefix(deps.config);
    this.defaultTtlMs = durationMs(deps.config.tokens?.defaultTtl, DEFAULT_TOKEN_TTL);
    const offRevoked = this.store.subscribe(REVOKED_CHANNEL, (hash) => this.evict(hash));
    // Revocations broadcast while this instance could not hear them: forget everything cached.
    const offResync = this.store.subscribe(RESYNC_CHANNEL, () => {
      this.generation++;
      this.positive.clear();
      this.negative.clear();
    });
    this.unsubscribe = () => { offRevoked(); offResync(); };
  }

  /** A token this gateway could have issued (see isWellFormedToken). */
  isWellFormed(key: string): boolean {
    return isWellFormedToken(key);
  }

  /** Carries the configured prefix: the `Bearer` scheme is ours only then (SPEC 4). */
  hasPrefix(key: string): boolean {
    return key.startsWith(this.prefix);
  }

  /**
   * Creates a token; `origin` describes the request for its `token.created` audit event.
   * `authTime`: when the user behind it signed in (default: now, e.g. a password just checked or the admin CLI).
   */
  async createToken(input: { user: string; name: string; ttlMs?: number | undefined; scopes?: readonly string[] | undefined; authTime?: number | undefined }, origin: AuditOrigin = {}): Promise<CreatedApiToken> {
    const ttlMs = input.ttlMs ?? this.defaultTtlMs;
    if (!Number.isFinite(ttlMs) || ttlMs < 1000) throw new GatewayError('bad_request', 'The token lifetime must be at least 1 second.');
    if ((await this.activeCount(input.user)) >= MAX_TOKENS_PER_USER) throw new GatewayError('bad_request', `A user may hold at most ${MAX_TOKENS_PER_USER} API tokens; revoke one first.`);

    const randomPart = base62(randomBytes(32), RANDOM_CHARS);
    const token = `${this.prefix}${randomPart}${checksum(randomPart)}`;
    const hash = hashToken(token);
    const createdAt = Math.floor(this.now() / 1000);
    const record: ApiTokenRecord = {
      id: randomUUID(),
      user: input.user,
      name: input.name,
      scopes: [...new Set(input.scopes ?? [])],
      createdAt,
      expiresAt: createdAt + Math.ceil(ttlMs / 1000),
      authTime: Math.min(input.authTime ?? createdAt, createdAt),
    };
    const keepMs = ttlMs + RETAIN_AFTER_EXPIRY_MS;
    // The record first: a listed id always resolves to a token.
    await this.store.set(`apitoken:h:${hash}`, JSON.stringify(record), keepMs);
    await this.store.set(`apitoken:id:${record.id}`, hash, keepMs);
    await this.store.indexAdd(userIndex(input.user), record.id, keepMs);
    this.negative.delete(hash);
    this.audit('token.created', record, origin);
    return { id: record.id, token, name: record.name, scopes: record.scopes, createdAt: record.createdAt, expiresAt: record.expiresAt };
  }

  /** The user's tokens (not revoked; expired ones are listed until they are purged), oldest first. */
  async listTokens(user: string): Promise<ApiTokenInfo[]> {
    const out: ApiTokenInfo[] = [];
    for (const id of await this.store.indexMembers(userIndex(user))) {
      const record = await this.recordById(id);
      if (!record || record.user !== user || record.revokedAt !== undefined) {
        await this.store.indexRemove(userIndex(user), id);
        continue;
      }
      const used = await this.store.get(`apitoken:used:${id}`);
      const lastUsedAt = used === null ? null : Number(used);
      out.push({ id, name: record.name, scopes: record.scopes, createdAt: record.createdAt, expiresAt: record.expiresAt, lastUsedAt: Number.isFinite(lastUsedAt) ? lastUsedAt : null });
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /** Revokes one of `user`'s tokens by id. False when no such token belongs to the user. */
  async revokeToken(user: string, id: string, origin: AuditOrigin = {}): Promise<boolean> {
    const hash = await this.store.get(`apitoken:id:${id}`);
    if (hash === null) return false;
    const record = await this.recordByHash(hash);
    if (!record || record.user !== user) return false;
    if (record.revokedAt === undefined) await this.revokeRecord(hash, record, origin);
    return true;
  }

  /** Revokes a token given its secret (RFC 7009). Returns the record, or undefined when unknown. */
  async revokeByToken(token: string, origin: AuditOrigin = {}): Promise<ApiTokenRecord | undefined> {
    if (!this.isWellFormed(token)) return undefined;
    const hash = hashToken(token);
    const record = await this.recordByHash(hash);
    if (!record) return undefined;
    if (record.revokedAt === undefined) await this.revokeRecord(hash, record, origin);
    return record;
  }

  /**
   * What a presented token is. Answers from the in-process caches when it can; otherwise reads
   * the store and throws StoreUnavailableError when the store is down (fail closed).
   */
  async lookup(token: string): Promise<TokenLookup> {
    if (!this.isWellFormed(token)) return { status: 'unknown' };
    const hash = hashToken(token);
    const record = await this.cachedRecord(hash);
    if (!record) return { status: 'unknown' };
    if (record.revokedAt !== undefined) return { status: 'revoked', record };
    if (record.expiresAt * 1000 <= this.now()) return { status: 'expired', record };
    return { status: 'active', record };
  }

  /**
   * A token as a credential: active, and its user still in the directory and not disabled. A
   * token whose user is unknown to the directory is refused (tokens for service accounts need a
   * user entry too), so deleting or disabling a user stops all of their tokens.
   */
  async verify(token: string, users: GatewayContext['users']): Promise<TokenVerification> {
    const found = await this.lookup(token);
    if (found.status === 'unknown') return { ok: false, code: 'invalid_token' };
    if (found.status === 'revoked') return { ok: false, code: 'token_revoked' };
    if (found.status === 'expired') return { ok: false, code: 'token_expired' };
    const user = await users.get(found.record.user);
    if (!user || user.disabled) return { ok: false, code: 'invalid_token' };
    this.touch(found.record);
    return { ok: true, record: found.record, user };
  }

  /**
   * `verify` answered from memory alone (a cached active record, its user from `peek`), or
   * undefined when the store or the directory must be asked: the warm request's path, no promise.
   * Only verified tokens are cached, so a malformed one simply misses (callers check the form).
   */
  verifyNow(token: string, users: GatewayContext['users']): TokenVerification | undefined {
    const record = this.positive.get(hashToken(token));
    if (record === undefined) return undefined;
    const user = peekUser(users, record.user);
    if (user === NOT_IN_MEMORY) return undefined;
    this.metrics?.cache.inc('token', 'hit');
    if (record.revokedAt !== undefined) return { ok: false, code: 'token_revoked' };
    if (record.expiresAt * 1000 <= this.now()) return { ok: false, code: 'token_expired' };
    if (!user || user.disabled) return { ok: false, code: 'invalid_token' };
    this.touch(record);
    return { ok: true, record, user };
  }

  /** Records lastUsedAt at most once a minute per token, without making the request wait. */
  touch(record: ApiTokenRecord): void {
    if (this.lastUsedWrites.has(record.id)) return;
    this.lastUsedWrites.set(record.id, true);
    const nowMs = this.now();
    const keepMs = Math.max(1000, record.expiresAt * 1000 - nowMs + RETAIN_AFTER_EXPIRY_MS);
    this.store.set(`apitoken:used:${record.id}`, String(Math.floor(nowMs / 1000)), keepMs).catch((err: unknown) => {
      this.lastUsedWrites.delete(record.id);
      this.log?.warn({ tokenId: record.id, err: errorName(err) }, 'could not record API token use');
    });
  }

  close(): void {
    this.unsubscribe();
    this.positive.clear();
    this.negative.clear();
    this.lastUsedWrites.clear();
  }

  private evict(hash: string): void {
    this.generation++;
    this.positive.delete(hash);
    this.negative.delete(hash);
  }

  private async cachedRecord(hash: string): Promise<ApiTokenRecord | null> {
    const hit = this.positive.get(hash);
    if (hit) {
      this.metrics?.cache.inc('token', 'hit');
      return hit;
    }
    if (this.negative.has(hash)) {
      this.metrics?.cache.inc('token', 'negative_hit');
      return null;
    }
    this.metrics?.cache.inc('token', 'miss');
    const pending = this.inflight.get(hash);
    if (pending) return pending;
    const generation = this.generation;
    const load = this.recordByHash(hash).then((record) => {
      if (generation === this.generation) {
        if (record) this.positive.set(hash, record);
        else this.negative.set(hash, true);
      }
      return record;
    });
    this.inflight.set(hash, load);
    try {
      return await load;
    } finally {
      this.inflight.delete(hash);
    }
  }

  private async recordByHash(hash: string): Promise<ApiTokenRecord | null> {
    const raw = await this.store.get(`apitoken:h:${hash}`);
    if (raw === null) return null;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (isRecord(parsed)) return parsed;
    } catch {
      // fall through: a corrupt record is no token
    }
    this.log?.warn('unreadable API token record in the store');
    return null;
  }

  private async recordById(id: string): Promise<ApiTokenRecord | null> {
    const hash = await this.store.get(`apitoken:id:${id}`);
    return hash === null ? null : this.recordByHash(hash);
  }

  /** Active tokens of a user; the index size answers cheaply while it is below the cap. */
  private async activeCount(user: string): Promise<number> {
    const members = await this.store.indexMembers(userIndex(user));
    if (members.length < MAX_TOKENS_PER_USER) return members.length;
    return (await this.listTokens(user)).filter((t) => t.expiresAt * 1000 > this.now()).length;
  }

  /** One audit line per created or revoked token: its id and owner, never the token or its hash. */
  private audit(event: 'token.created' | 'token.revoked', record: ApiTokenRecord, origin: AuditOrigin): void {
    if (this.auditLog === undefined) return;
    audit({ log: this.auditLog }, event, { user: record.user, id: record.id, ...origin });
  }

  private async revokeRecord(hash: string, record: ApiTokenRecord, origin: AuditOrigin): Promise<void> {
    const nowMs = this.now();
    const tombstone: ApiTokenRecord = { ...record, revokedAt: Math.floor(nowMs / 1000) };
    const keepMs = Math.max(1000, record.expiresAt * 1000 - nowMs + RETAIN_AFTER_EXPIRY_MS);
    await this.store.set(`apitoken:h:${hash}`, JSON.stringify(tombstone), keepMs);
    this.evict(hash);
    await this.store.publish(REVOKED_CHANNEL, hash);
    await this.store.delete(`apitoken:id:${record.id}`);
    await this.store.delete(`apitoken:used:${record.id}`);
    await this.store.indexRemove(userIndex(record.user), record.id);
    this.audit('token.revoked', record, origin);
  }
}

const userIndex = (user: string): string => `apitoken:user:${user}`;

const errorName = (err: unknown): string => (err instanceof Error ? err.name : 'Error');

const sharedApiTokens = refCounted((ctx: GatewayContext) => new ApiTokenService(ctx), (service) => service.close());

/**
 * One service per gateway context, shared by the `token` authenticator and the /tokens and
 * /oauth endpoints so they share caches and one pub/sub subscription. Each user calls
 * `release` when it closes; the last one unsubscribes.
 */
export function acquireApiTokens(ctx: GatewayContext): { service: ApiTokenService; release: () => void } {
  const held = sharedApiTokens(ctx);
  return { service: held.value, release: held.release };
}
