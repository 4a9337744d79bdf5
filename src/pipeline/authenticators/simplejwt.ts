// `jwt` with `preset: simplejwt` (SPEC 3.2): access tokens djangorestframework-simplejwt issued
// with its defaults — HS256 under SIGNING_KEY (django.secretKey's current key, or `secret:`).
// The verifier is bound to that one secret and that one algorithm: no public key, no `alg` from
// the token ever chooses how it is checked (HS/RS confusion, `none`). `token_type` must be
// "access" (a refresh token is refused), `exp` is required, and the user is the Django user named
// by the `user_id` claim (USER_ID_CLAIM), read through the directory's cache so its current
// is_active holds within users.postgres.cacheTtl.
//
// Mine: a Bearer compact JWS whose unverified payload has a `token_type` and the configured
// `issuer` (simplejwt's ISSUER; none by default) — so the gateway's own JWTs and other issuers'
// tokens in the same chain go on to their authenticators.
import { createDecoder, createVerifier, TokenError } from 'fast-jwt';
import { LRUCache } from 'lru-cache';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import { NOT_IN_MEMORY, type GatewayContext } from '../../context.js';
import { djangoSecretKeys } from '../../credentials/django.js';
import type { DjangoUser } from '../../credentials/postgres-users.js';
import { StoreUnavailableError } from '../../errors.js';
import { durationMs } from '../../util/duration.js';
import { requireDjangoDatabase } from './django-session.js';
import { bearerAsSent } from './jwt.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Rejected } from '../types.js';

/** Longer bearer values are not simplejwt access tokens; they go on down the chain unparsed. */
const MAX_TOKEN_LENGTH = 8 * 1024;
const VERIFIER_CACHE_SIZE = 10_000;
const MAX_CLOCK_TOLERANCE_MS = 60_000;
/** Accepted tokens remembered (see `accepted` below), and for how long at most. */
const ACCEPTED_CACHE_SIZE = 10_000;
const ACCEPTED_CACHE_TTL_MS = 60_000;
const ACCEPTED_CACHE_MAX_BYTES = 32 * 1024 * 1024;
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

type Payload = Record<string, unknown>;

/** An access token this authenticator accepted: what a later request with it still has to check. */
interface Accepted {
  readonly userId: string;
  readonly payload: Payload;
  /** Epoch ms after which the verifier would call it expired (exp + clock tolerance). */
  readonly validUntil: number;
  /** The directory's user object the outcome was made for (frozen per load: a change is a new object). */
  user?: DjangoUser;
  outcome?: AuthOutcome;
}

function bearer(request: AuthRequest): string | undefined {
  const auth = request.headers.authorization;
  if (typeof auth !== 'string' || auth.length < 8 || auth.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const value = auth.slice(7).trim();
  return value.length > 0 && value.length <= MAX_TOKEN_LENGTH && JWS.test(value) ? value : undefined;
}

export function createSimpleJwtAuthenticator(name: string, cfg: AuthenticatorConfigOf<'jwt'>, ctx: GatewayContext): Authenticator {
  const db = requireDjangoDatabase(ctx, name);
  const secret = cfg.secret === undefined ? djangoSecretKeys(ctx.config, ctx.configDir)[0] : typeof cfg.secret === 'string' ? cfg.secret : readFileSync(resolve(ctx.configDir, cfg.secret.file), 'utf8').trim();
  if (secret === undefined) throw new Error(`authenticators.${name}: preset simplejwt needs django.secretKey or secret`);
  // `issuer` is optional for this preset although the shared config type says string.
  const issuer = (cfg as { issuer?: string }).issuer;
  const userIdClaim = cfg.userIdClaim ?? 'user_id';
  const clockToleranceMs = Math.min(durationMs(cfg.clockTolerance, 0), MAX_CLOCK_TOLERANCE_MS);
  const decode = createDecoder({ complete: false });
  const verify = createVerifier({
    key: secret,
    algorithms: ['HS256'],
    requiredClaims: ['exp', 'token_type', userIdClaim],
    ...(issuer !== undefined ? { allowedIss: issuer } : {}),
    ...(cfg.audience !== undefined ? { allowedAud: cfg.audience } : {}),
    // simplejwt's LEEWAY defaults to 0.
    clockTolerance: clockToleranceMs,
    cache: VERIFIER_CACHE_SIZE,
  }) as (token: string) => Payload;

  function isMine(token: string): boolean {
    let payload: unknown;
    try {
      payload = decode(token);
    } catch {
      return false;
    }
    if (payload === null || typeof payload !== 'object') return false;
    const p = payload as Payload;
    return typeof p.token_type === 'string' && p.iss === issuer;
  }

  // Accepted tokens keyed by the exact Bearer value (another signature is another key, so a
  // forgery never hits): a hit skips the decode, the verifier and the identity it builds, nothing
  // else. Expiry is checked on every hit and the user is read from the directory every time (its
  // cache holds is_active within users.postgres.cacheTtl); past its expiry an entry falls through
  // to full verification. Rejections are never stored; bounded by count, bytes and a TTL of at
  // most the token's life.
  const accepted = new LRUCache<string, Accepted>({
    max: ACCEPTED_CACHE_SIZE,
    ttl: ACCEPTED_CACHE_TTL_MS,
    maxSize: ACCEPTED_CACHE_MAX_BYTES,
    sizeCalculation: (_v, token) => 512 + 2 * token.length,
  });

  /** Synchronous when the token was accepted before and its user is in the directory's cache (warm); else it asks the database. */
  function authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    const quick = bearerAsSent(request.headers.authorization);
    const hit = quick === undefined ? undefined : accepted.get(quick);
    if (hit !== undefined) {
      if (Date.now() <= hit.validUntil) return forUser(hit);
      accepted.delete(quick as string);
    }
    const token = bearer(request);
    if (token === undefined || !isMine(token)) return NOT_MINE;
    let payload: Payload;
    try {
      payload = verify(token);
    } catch (err) {
      if (err instanceof TokenError && err.code === TokenError.codes.expired) return rejected('token_expired');
      return rejected('invalid_token');
    }
    if (payload.token_type !== 'access') return rejected('invalid_token', 'Only access tokens are accepted.');
    const claim = payload[userIdClaim];
    const userId = typeof claim === 'number' && Number.isSafeInteger(claim) ? String(claim) : typeof claim === 'string' ? claim : undefined;
    if (userId === undefined) return rejected('invalid_token');
    const entry: Accepted = { userId, payload, validUntil: (payload.exp as number) * 1000 + clockToleranceMs };
    const ttl = Math.min(ACCEPTED_CACHE_TTL_MS, entry.validUntil - Date.now());
    if (ttl > 0) accepted.set(token, entry, { ttl });
    return forUser(entry);
  }

  /** The outcome for an accepted token's current user: made once per directory user object. */
  function forUser(entry: Accepted): AuthOutcome | Promise<AuthOutcome> {
    const known = db.peekById(entry.userId);
    if (known === NOT_IN_MEMORY) return lookUp(entry.userId, entry.payload);
    if (known !== undefined && known === entry.user && entry.outcome !== undefined) return entry.outcome;
    const outcome = outcomeFor(known, entry.payload);
    if (outcome.kind === 'identity') {
      entry.user = known;
      entry.outcome = outcome;
    }
    return outcome;
  }

  async function lookUp(userId: string, payload: Payload): Promise<AuthOutcome> {
    let user;
    try {
      user = await db.getById(userId);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return rejected('store_unavailable');
      throw err;
    }
    return outcomeFor(user, payload);
  }

  function outcomeFor(user: DjangoUser | undefined, payload: Payload): AuthOutcome {
    // simplejwt's JWTAuthentication.get_user: unknown or inactive users are refused.
    if (!user || user.record.disabled) return rejected('invalid_token', 'The token user is not active.');
    const record = user.record;
    const iat = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? Math.floor(payload.iat) : 0;
    // Frozen: the outcome is kept with the accepted token and handed out on every hit.
    return authenticated(Object.freeze({
      user: record.username,
      email: record.email,
      groups: Object.freeze([...record.groups]),
      scopes: Object.freeze([]),
      method: 'jwt',
      authenticator: name,
      mfa: false,
      amr: Object.freeze(['jwt']),
      authTime: iat,
      subject: record.username,
      tokenId: typeof payload.jti === 'string' && payload.jti.length <= 128 ? payload.jti : undefined,
      expiresAt: typeof payload.exp === 'number' ? payload.exp : undefined,
    }));
  }

  return {
    name,
    type: 'jwt',
    authenticate,
    challenge: (rejection?: Rejected) => (rejection === undefined ? 'Bearer realm="authgate"' : 'Bearer realm="authgate", error="invalid_token"'),
  };
}
