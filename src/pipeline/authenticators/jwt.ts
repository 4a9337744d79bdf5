// `jwt`: Bearer JWS access tokens, from the gateway itself (`issuer: self`) or an external issuer
// (SPEC 3, 4). "Mine" only when the unverified `iss` equals this authenticator's issuer, so several
// jwt authenticators and an introspection authenticator can share a chain. Every check below is
// one of RFC 7515/7519/8725/9068's, and each is tried by an attack in test/authenticators (THREATS A).
// Where keys come from and how a JWS and its claims are checked live in src/jose/ (shared with
// OIDC ID tokens and back-channel logout tokens); this file is the authenticator and its cache.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { identityFromClaims } from '../../jose/claims.js';
import { classifyBearer, JwsVerifier, type Json } from '../../jose/jws.js';
import { RemoteKeySource, StaticKeySource, verificationKey, type KeySource, type VerificationKey } from '../../jose/keys.js';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import { NOT_IN_MEMORY, peekUser, type GatewayContext } from '../../context.js';
import { acquireDenylist, type Denylist } from '../../tokens/denylist.js';
import { readFamilyVersion, selfIssuer } from '../../tokens/jwt-issuer.js';
import { durationMs } from '../../util/duration.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Identity, type Rejected } from '../types.js';

export type JwtAuthenticatorConfig = AuthenticatorConfigOf<'jwt'>;

const MAX_CLOCK_TOLERANCE_MS = 60_000;
const DEFAULT_CLOCK_TOLERANCE = '30s';
const DEFAULT_REFRESH_INTERVAL = '30s';
/** Accepted tokens remembered per authenticator, with their identity (see `VerifiedTokenCache`). */
const TOKEN_CACHE_SIZE = 10_000;
const TOKEN_CACHE_TTL_MS = 60_000;
/** Longer tokens are verified every time rather than remembered. */
const TOKEN_CACHE_MAX_TOKEN_LENGTH = 4 * 1024;
/** Bound on the cache's estimated memory (tokens plus identities). */
const TOKEN_CACHE_MAX_BYTES = 32 * 1024 * 1024;

/** The Bearer value of an Authorization header, or undefined. */
export function bearerValue(headers: AuthRequest['headers']): string | undefined {
  const auth = headers.authorization;
  if (typeof auth !== 'string' || auth.length < 8 || !(auth.startsWith('Bearer ') || auth.slice(0, 7).toLowerCase() === 'bearer ')) return undefined;
  const value = auth.slice(7).trim();
  return value === '' || /\s/.test(value) ? undefined : value;
}

/**
 * The token of an `Authorization: Bearer <token>` header exactly as sent, for a lookup in a cache
 * of accepted tokens before any parsing: only a token that passed the full checks is ever
 * cached, so an exact hit is that token. Anything else (other spellings, whitespace) misses.
 */
export function bearerAsSent(auth: string | undefined): string | undefined {
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Verified-token cache

/** What an accepted token was found to be, minus everything that can change after issuance. */
interface VerifiedToken {
  /** Frozen: handed out on every hit. */
  readonly identity: Identity;
  /** The chain's answer for it, made once (a hit allocates nothing). */
  readonly outcome: AuthOutcome;
  /** Epoch ms after which the verifier would call the token expired (exp + tolerance, iat + maxAge). */
  readonly validUntil: number;
  /** The key that verified it: a key rotated out of the key set no longer vouches for it. */
  readonly key: VerificationKey;
  /** Self-issued tokens: the denylist and user-check inputs. */
  readonly jti: string | undefined;
  readonly fam: string | undefined;
  readonly sub: unknown;
}

/**
 * Accepted tokens keyed by the exact compact JWS (another signature is another key, so a forgery
 * never hits), per authenticator instance: a hit skips decoding, classification and signature and
 * claim verification, nothing else. Expiry, key rotation, the denylist and the user check are
 * re-checked on every hit; an entry past its expiry falls through to full verification, which
 * answers exactly as it would have without the cache. Rejections are never stored, so junk cannot
 * grow it; it is bounded by count, bytes, token length and a TTL of at most the token's life.
 */
function verifiedTokenCache(): LRUCache<string, VerifiedToken> {
  return new LRUCache<string, VerifiedToken>({
    max: TOKEN_CACHE_SIZE,
    ttl: TOKEN_CACHE_TTL_MS,
    maxSize: TOKEN_CACHE_MAX_BYTES,
    sizeCalculation: (v, token) =>
      256 + token.length + v.identity.user.length + (v.identity.subject?.length ?? 0) + (v.jti?.length ?? 0) + (v.fam?.length ?? 0) + [...v.identity.groups, ...v.identity.scopes, ...v.identity.amr].reduce((n, s) => n + s.length + 16, 0),
  });
}

/** The instant the verifier stops accepting this (already verified) payload, as fast-jwt computes it. */
function validUntil(payload: Json, clockToleranceMs: number, maxAgeMs: number | undefined): number {
  const byExp = (payload.exp as number) * 1000 + clockToleranceMs;
  return maxAgeMs !== undefined && typeof payload.iat === 'number' ? Math.min(byExp, payload.iat * 1000 + maxAgeMs) : byExp;
}

const freezeIdentity = (identity: Identity): Identity =>
  Object.freeze({ ...identity, groups: Object.freeze([...identity.groups]), scopes: Object.freeze([...identity.scopes]), amr: Object.freeze([...identity.amr]) });

/** Per authenticator: the verified-token cache (for tests and diagnostics). */
const tokenCaches = new WeakMap<Authenticator, LRUCache<string, VerifiedToken>>();

/** How many accepted tokens a `jwt` authenticator currently remembers; undefined for other authenticators. */
export function verifiedTokenCacheSize(auth: Authenticator): number | undefined {
  return tokenCaches.get(auth)?.size;
}

// ---------------------------------------------------------------------------------------------
// The authenticator

/** Keys of the gateway's own signing key set. */
export function selfKeySource(ctx: Pick<GatewayContext, 'signing'>): { source: KeySource; algorithms: string[] } {
  const keys: VerificationKey[] = [];
  const algorithms: string[] = [];
  for (const jwk of ctx.signing.jwks().keys) {
    const pub = ctx.signing.publicKey(jwk.kid);
    if (pub === undefined) continue;
    if (!algorithms.includes(pub.alg)) algorithms.push(pub.alg);
    const key = verificationKey(createPublicKey(pub.pem), jwk.kid, [pub.alg], pub.alg);
    if (key !== undefined) keys.push(key);
  }
  return { source: new StaticKeySource(keys), algorithms };
}

function publicKeySource(cfg: JwtAuthenticatorConfig, ctx: GatewayContext, algorithms: readonly string[], name: string): KeySource {
  const keys: VerificationKey[] = [];
  for (const [i, secret] of (cfg.publicKeys ?? []).entries()) {
    if (typeof secret !== 'string') throw new Error(`authenticators.${name}.publicKeys[${i}]: the key file was not loaded`);
    let key: KeyObject;
    try {
      key = createPublicKey(secret);
    } catch {
      throw new Error(`authenticators.${name}.publicKeys[${i}]: not a PEM public key`);
    }
    const vk = verificationKey(key, undefined, algorithms);
    if (vk === undefined) throw new Error(`authenticators.${name}.publicKeys[${i}]: the key fits none of the algorithms ${algorithms.join(', ')}`);
    keys.push(vk);
  }
  return new StaticKeySource(keys);
}

export function createJwtAuthenticator(name: string, cfg: JwtAuthenticatorConfig, ctx: GatewayContext): Authenticator {
  const self = cfg.issuer === 'self';
  const issuer = self ? selfIssuer(ctx) : cfg.issuer;
  const clockToleranceMs = Math.min(durationMs(cfg.clockTolerance, DEFAULT_CLOCK_TOLERANCE), MAX_CLOCK_TOLERANCE_MS);
  const maxAgeMs = cfg.maxAge !== undefined ? durationMs(cfg.maxAge) : undefined;

  let source: KeySource;
  let algorithms: readonly string[];
  if (self) {
    ({ source, algorithms } = selfKeySource(ctx));
  } else {
    algorithms = cfg.algorithms ?? ['RS256'];
    source =
      cfg.publicKeys !== undefined
        ? publicKeySource(cfg, ctx, algorithms, name)
        : new RemoteKeySource({ issuer, jwksUri: cfg.jwksUri, algorithms, refreshIntervalMs: durationMs(cfg.jwksRefreshInterval, DEFAULT_REFRESH_INTERVAL), log: ctx.log });
  }

  const verifier = new JwsVerifier(
    {
      issuer,
      audience: cfg.audience,
      algorithms,
      clockToleranceMs,
      maxAgeMs,
      // Self: only the gateway's access tokens (RFC 9068), never its refresh or assertion tokens.
      types: self ? ['at+jwt'] : cfg.types,
      requireTokenUse: self,
    },
    source,
  );
  const denylist: Denylist | undefined = self ? acquireDenylist(ctx.store, ctx.log) : undefined;
  const familyCheck = self ? new FamilyUserCheck(ctx) : undefined;
  const cache = verifiedTokenCache();

  /** The checks that can change after issuance; the same on a cache hit as after verification. */
  function liveChecks(jti: string | undefined, fam: string | undefined, sub: unknown): Rejected | undefined | Promise<Rejected | undefined> {
    if (denylist === undefined) return undefined;
    if (denylist.isRevoked(jti, fam)) return rejected('token_revoked');
    if (familyCheck !== undefined && fam !== undefined) {
      const now = familyCheck.checkNow(sub, fam);
      return now !== NOT_IN_MEMORY ? now : familyCheck.check(sub, fam);
    }
    return undefined;
  }

  /** Synchronous on a warm cache hit with nothing to look up (external issuers): no promise per request. */
  function authenticate(req: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    // A cached token is looked up before the header is checked character by character: only a
    // token that passed bearerValue and verification is ever cached, so an exact hit on the
    // header's remainder is that same token (no whitespace scan of a 600-character string).
    const quick = bearerAsSent(req.headers.authorization);
    const quickHit = quick === undefined ? undefined : cache.get(quick);
    const value = quickHit !== undefined ? quick : bearerValue(req.headers);
    if (value === undefined) return NOT_MINE;

    const hit = quickHit ?? cache.get(value);
    if (hit !== undefined) {
      // Only a token this authenticator accepted (so "mine") is here; stale entries are verified afresh.
      if (Date.now() <= hit.validUntil && source.holds(hit.key)) {
        const problem = liveChecks(hit.jti, hit.fam, hit.sub);
        if (problem instanceof Promise) return problem.then((p) => p ?? hit.outcome);
        return problem ?? hit.outcome;
      }
      cache.delete(value);
    }
    return verifyFresh(value);
  }

  async function verifyFresh(value: string): Promise<AuthOutcome> {
    const c = classifyBearer(value);
    if (c.kind === 'none') return NOT_MINE;
    if (c.kind === 'refuse') return rejected('invalid_token', c.detail);
    if (c.jws.payload.iss !== issuer) return NOT_MINE;

    const result = await verifier.verify(c.jws);
    if (!result.ok) return rejected(result.code, result.detail);
    const payload = result.payload;
    const jti = typeof payload.jti === 'string' ? payload.jti : undefined;
    const fam = typeof payload.fam === 'string' ? payload.fam : undefined;
    const problem = await liveChecks(jti, fam, payload.sub);
    if (problem !== undefined) return problem;
    const identity = identityFromClaims(payload, self ? undefined : cfg.claims, name, !self);
    if (identity === undefined) return rejected('invalid_token', 'The token names no acceptable user.');
    const frozen = freezeIdentity(identity);
    if (value.length <= TOKEN_CACHE_MAX_TOKEN_LENGTH) {
      const until = validUntil(payload, clockToleranceMs, maxAgeMs);
      const ttl = Math.min(TOKEN_CACHE_TTL_MS, until - Date.now());
      if (ttl > 0) cache.set(value, { identity: frozen, outcome: authenticated(frozen), validUntil: until, key: result.key, jti, fam, sub: payload.sub }, { ttl });
    }
    return authenticated(frozen);
  }

  const authenticator: Authenticator = {
    name,
    type: 'jwt',
    authenticate,
    challenge: (rejection?: Rejected) => (rejection === undefined ? 'Bearer realm="authgate"' : 'Bearer realm="authgate", error="invalid_token"'),
    ready: () => source.ready(),
    close: async () => {
      cache.clear();
      denylist?.release();
      await source.close();
    },
  };
  tokenCaches.set(authenticator, cache);
  return authenticator;
}

/**
 * Gateway access tokens of a refresh family stop working when their user is disabled, removed, or
 * changed (password, groups) since the family was created: the family's user version is read once
 * per family from the store and compared with the directory's current record on every request.
 */
export class FamilyUserCheck {
  /** fam -> user version at issuance ('' = the family no longer exists). */
  readonly #versions = new LRUCache<string, string>({ max: 10_000, ttl: 10 * 60_000 });

  constructor(private readonly ctx: Pick<GatewayContext, 'users' | 'store'>) {}

  /**
   * `check` answered from memory (the user from `peek`, the family's version cached), or
   * NOT_IN_MEMORY when the directory or the store must be asked.
   */
  checkNow(sub: unknown, fam: string): Rejected | undefined | typeof NOT_IN_MEMORY {
    if (typeof sub !== 'string') return rejected('invalid_token');
    const user = peekUser(this.ctx.users, sub);
    if (user === NOT_IN_MEMORY) return NOT_IN_MEMORY;
    if (user === undefined || user.disabled) return rejected('token_revoked');
    const version = this.#versions.get(fam);
    if (version === undefined) return NOT_IN_MEMORY;
    if (version === '') return rejected('token_revoked');
    return version === user.version ? undefined : rejected('token_revoked');
  }

  async check(sub: unknown, fam: string): Promise<Rejected | undefined> {
    if (typeof sub !== 'string') return rejected('invalid_token');
    let user;
    try {
      user = await this.ctx.users.get(sub);
    } catch {
      return rejected('service_unavailable', 'The user directory is unavailable.');
    }
    if (user === undefined || user.disabled) return rejected('token_revoked');
    let version = this.#versions.get(fam);
    if (version === undefined) {
      try {
        version = (await readFamilyVersion(this.ctx.store, fam)) ?? '';
        this.#versions.set(fam, version);
      } catch {
        // Store unreachable: the token is self-contained; the denylist and the user check still apply (SPEC 8).
        return undefined;
      }
    }
    if (version === '') return rejected('token_revoked');
    return version === user.version ? undefined : rejected('token_revoked');
  }
}
