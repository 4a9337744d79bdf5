// `jwt`: Bearer JWS access tokens, from the gateway itself (`issuer: self`) or an external issuer
// (SPEC 3, 4). "Mine" only when the unverified `iss` equals this authenticator's issuer, so several
// jwt authenticators and an introspection authenticator can share a chain. Every check below is
// one of RFC 7515/7519/8725/9068's, and each is tried by an attack in test/authenticators (THREATS A).
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createVerifier, TokenError } from 'fast-jwt';
import { LRUCache } from 'lru-cache';
import { Agent, request, type Dispatcher } from 'undici';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import type { GatewayContext } from '../../context.js';
import { acquireDenylist, type Denylist } from '../../tokens/denylist.js';
import { readFamilyVersion, selfIssuer } from '../../tokens/jwt-issuer.js';
import { durationMs } from '../../util/duration.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Identity, type Rejected } from '../types.js';

export type JwtAuthenticatorConfig = AuthenticatorConfigOf<'jwt'>;

/** Longer bearer values are refused unparsed (THREATS 13). */
export const MAX_TOKEN_LENGTH = 16 * 1024;
const MAX_KID_LENGTH = 128;
const MAX_CLOCK_TOLERANCE_MS = 60_000;
const DEFAULT_CLOCK_TOLERANCE = '30s';
const DEFAULT_REFRESH_INTERVAL = '30s';
/** Verified tokens remembered per key (fast-jwt's own LRU, bounded by each token's exp). */
const VERIFIER_CACHE_SIZE = 10_000;
/** Accepted tokens remembered per authenticator, with their identity (see `VerifiedTokenCache`). */
const TOKEN_CACHE_SIZE = 10_000;
const TOKEN_CACHE_TTL_MS = 60_000;
/** Longer tokens are verified every time rather than remembered. */
const TOKEN_CACHE_MAX_TOKEN_LENGTH = 4 * 1024;
/** Bound on the cache's estimated memory (tokens plus identities). */
const TOKEN_CACHE_MAX_BYTES = 32 * 1024 * 1024;
/** A failed key fetch is retried at most this often while no key is known. */
const ERROR_RETRY_MS = 5_000;
/** Known keys are refreshed in the background once older than this. */
const KEYS_MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 3_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;
const MAX_KEYS = 100;
/** At most this many keys are tried for a token without a usable `kid`. */
const MAX_CANDIDATES = 4;

const B64URL = /^[A-Za-z0-9_-]+$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
const KID_RE = /^[\u0020-\u007e]+$/;
// RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E
const SCOPE_TOKEN = /^[\u0021\u0023-\u005b\u005d-\u007e]+$/;

/** amr values (RFC 8176, plus the gateway's own) that mean a second factor was completed. */
const MFA_AMR = new Set(['mfa', 'otp', 'hwk', 'sms', 'tel', 'fpt', 'face', 'iris', 'retina', 'vbm', 'email', 'recovery']);
/** `typ` headers that never denote an access token (RFC 8417, 8725 §3.11, OIDC logout). */
const NON_ACCESS_TYPES = new Set(['refresh+jwt', 'logout+jwt', 'secevent+jwt', 'id_token+jwt', 'dpop+jwt', 'authgate-assertion+jwt']);
/** Keycloak-style payload `typ` claims of tokens that are not access tokens. */
const NON_ACCESS_PAYLOAD_TYPES = new Set(['id', 'refresh', 'offline', 'logout']);

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function decodeSegment(segment: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `typ` as RFC 7515 §4.1.9 compares it: case-insensitive, `application/` optional. */
export const normalizeTyp = (typ: string): string => typ.toLowerCase().replace(/^application\//, '');

/** The Bearer value of an Authorization header, or undefined. */
export function bearerValue(headers: AuthRequest['headers']): string | undefined {
  const auth = headers.authorization;
  if (typeof auth !== 'string' || auth.length < 8 || auth.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const value = auth.slice(7).trim();
  return value === '' || /\s/.test(value) ? undefined : value;
}

// ---------------------------------------------------------------------------------------------
// Keys

/** One verification key and the algorithms it may be used with (RFC 8725 §3.1: alg bound to key). */
export interface VerificationKey {
  readonly kid: string | undefined;
  readonly algs: ReadonlySet<string>;
  readonly pem: string;
}

/** The algorithms a key of this type can verify. */
function algsForKey(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 ? ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] : [];
    case 'rsa-pss':
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 ? ['PS256', 'PS384', 'PS512'] : [];
    case 'ec':
      return ({ prime256v1: ['ES256'], secp384r1: ['ES384'], secp521r1: ['ES512'] } as Record<string, string[]>)[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? [];
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

/** A verification key from a public key, restricted to `allowed` and to `declaredAlg` if any. */
export function verificationKey(key: KeyObject, kid: string | undefined, allowed: readonly string[], declaredAlg?: string): VerificationKey | undefined {
  if (key.type !== 'public') key = createPublicKey(key);
  const algs = algsForKey(key).filter((a) => allowed.includes(a) && (declaredAlg === undefined || a === declaredAlg));
  if (algs.length === 0) return undefined;
  return { kid, algs: new Set(algs), pem: key.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A JWK from a JWKS document as a verification key; private, encryption-only or odd keys are skipped. */
function keyFromJwk(jwk: unknown, allowed: readonly string[]): VerificationKey | undefined {
  if (!isObject(jwk) || 'd' in jwk || 'k' in jwk) return undefined;
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return undefined;
  const kid = jwk.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH || !KID_RE.test(kid))) return undefined;
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') return undefined;
  try {
    const { kty, n, e, crv, x, y } = jwk;
    const key = createPublicKey({ key: { kty, n, e, crv, x, y } as JsonWebKey, format: 'jwk' });
    return verificationKey(key, kid, allowed, jwk.alg);
  } catch {
    return undefined;
  }
}

type KeyLookup = readonly VerificationKey[] | 'unavailable';

/** Where an authenticator's keys come from. */
interface KeySource {
  candidates(kid: string | undefined, alg: string): KeyLookup | Promise<KeyLookup>;
  /** Whether a key returned earlier is still one of the current keys (rotated-out keys are not). */
  holds(key: VerificationKey): boolean;
  ready(): Promise<'ok' | 'degraded'>;
  close(): Promise<void>;
}

function pick(keys: readonly VerificationKey[], kid: string | undefined, alg: string): VerificationKey[] {
  const out: VerificationKey[] = [];
  for (const k of keys) {
    if (!k.algs.has(alg)) continue;
    if (kid !== undefined && k.kid !== undefined && k.kid !== kid) continue;
    out.push(k);
    if (out.length >= MAX_CANDIDATES) break;
  }
  // A key with the exact kid wins over kid-less keys.
  if (kid !== undefined && out.some((k) => k.kid === kid)) return out.filter((k) => k.kid === kid);
  return out;
}

class StaticKeySource implements KeySource {
  constructor(private readonly keys: readonly VerificationKey[]) {}
  candidates(kid: string | undefined, alg: string): KeyLookup {
    return pick(this.keys, kid, alg);
  }
  holds(key: VerificationKey): boolean {
    return this.keys.includes(key);
  }
  async ready(): Promise<'ok'> {
    return 'ok';
  }
  async close(): Promise<void> {}
}

export interface RemoteKeySourceOptions {
  issuer: string;
  /** Fixed JWKS URL; otherwise discovered from `<issuer>/.well-known/openid-configuration`. */
  jwksUri?: string | undefined;
  algorithms: readonly string[];
  /** An unknown kid causes at most one fetch per this interval (THREATS 7). */
  refreshIntervalMs: number;
  timeoutMs?: number;
  log: GatewayContext['log'];
}

/**
 * Keys from a JWKS URL. The last good key set is kept while the issuer is unreachable; a flood of
 * unknown kids causes at most one fetch per interval and never evicts a known key. Header key
 * material (`jwk`, `jku`, `x5u`, `x5c`) is never consulted: the URL comes only from config.
 */
export class RemoteKeySource implements KeySource {
  readonly #opts: RemoteKeySourceOptions;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  #keys: readonly VerificationKey[] | undefined;
  #fetchedAt = 0;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #lastFailed = false;
  #inflight: Promise<void> | undefined;
  #jwksUri: string | undefined;
  /** Fetches made (for readiness and tests). */
  fetches = 0;

  constructor(opts: RemoteKeySourceOptions) {
    this.#opts = opts;
    this.#timeoutMs = opts.timeoutMs ?? FETCH_TIMEOUT_MS;
    this.#jwksUri = opts.jwksUri;
    this.#agent = new Agent({ connect: { timeout: this.#timeoutMs }, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs, connections: 4 });
    void this.#refresh();
  }

  async candidates(kid: string | undefined, alg: string): Promise<KeyLookup> {
    if (this.#keys === undefined) {
      await this.#refreshIfAllowed();
      if (this.#keys === undefined) return 'unavailable';
    }
    let found = pick(this.#keys, kid, alg);
    const now = Date.now();
    if (found.length > 0) {
      if (now - this.#fetchedAt > KEYS_MAX_AGE_MS) void this.#refreshIfAllowed();
      return found;
    }
    if (kid !== undefined && now - this.#lastAttempt >= this.#opts.refreshIntervalMs) {
      await this.#refreshIfAllowed();
      found = pick(this.#keys, kid, alg);
    }
    return found;
  }

  holds(key: VerificationKey): boolean {
    return this.#keys?.includes(key) ?? false;
  }

  async ready(): Promise<'ok' | 'degraded'> {
    if (this.#keys === undefined) await this.#refreshIfAllowed();
    if (this.#keys === undefined) throw new Error('signing keys unavailable');
    return this.#lastFailed ? 'degraded' : 'ok';
  }

  async close(): Promise<void> {
    await this.#agent.close().catch(() => undefined);
  }

  /** One fetch at a time, and none sooner than the interval (a shorter one while no key is known). */
  #refreshIfAllowed(): Promise<void> {
    if (this.#inflight) return this.#inflight;
    const wait = this.#keys === undefined ? Math.min(this.#opts.refreshIntervalMs, ERROR_RETRY_MS) : this.#opts.refreshIntervalMs;
    if (Date.now() - this.#lastAttempt < wait) return Promise.resolve();
    return this.#refresh();
  }

  #refresh(): Promise<void> {
    if (this.#inflight) return this.#inflight;
    this.#lastAttempt = Date.now();
    this.fetches++;
    this.#inflight = this.#load()
      .then((keys) => {
        this.#keys = keys;
        this.#fetchedAt = Date.now();
        if (this.#lastFailed) this.#opts.log.info({ issuer: this.#opts.issuer }, 'JWKS available again');
        this.#lastFailed = false;
      })
      .catch((err: unknown) => {
        if (!this.#lastFailed) this.#opts.log.warn({ issuer: this.#opts.issuer, err: err instanceof Error ? err.message : String(err) }, 'cannot fetch JWKS; keeping the last good keys');
        this.#lastFailed = true;
        if (this.#opts.jwksUri === undefined) this.#jwksUri = undefined; // rediscover next time
      })
      .finally(() => {
        this.#inflight = undefined;
      });
    return this.#inflight;
  }

  async #load(): Promise<VerificationKey[]> {
    if (this.#jwksUri === undefined) {
      const discoveryUrl = `${this.#opts.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const doc = await this.#getJson(discoveryUrl);
      // OIDC Discovery §4.3: the document's issuer must be exactly the configured one.
      if (doc.issuer !== this.#opts.issuer) throw new Error('discovery document issuer does not match');
      if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) throw new Error('discovery document has no jwks_uri');
      this.#jwksUri = doc.jwks_uri;
    }
    const jwks = await this.#getJson(this.#jwksUri);
    if (!Array.isArray(jwks.keys)) throw new Error('JWKS document has no keys array');
    const keys: VerificationKey[] = [];
    for (const jwk of jwks.keys.slice(0, MAX_KEYS)) {
      const key = keyFromJwk(jwk, this.#opts.algorithms);
      if (key !== undefined) keys.push(this.#reuse(key));
    }
    return keys;
  }

  /** Keeps the previous object for an unchanged key, so its verifier (and cache) survives a refresh. */
  #reuse(key: VerificationKey): VerificationKey {
    const old = this.#keys?.find((k) => k.kid === key.kid && k.pem === key.pem && k.algs.size === key.algs.size && [...k.algs].every((a) => key.algs.has(a)));
    return old ?? key;
  }

  async #getJson(url: string): Promise<Json> {
    const res = await request(url, {
      method: 'GET',
      dispatcher: this.#agent as Dispatcher,
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.#timeoutMs * 2),
    });
    // Destroying the body below makes it emit an abort error nobody else would handle.
    res.body.on('error', () => undefined);
    if (res.statusCode !== 200) {
      res.body.destroy();
      throw new Error(`HTTP ${res.statusCode} from ${new URL(url).origin}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_DOCUMENT_BYTES) {
        res.body.destroy();
        throw new Error('key document too large');
      }
      chunks.push(chunk as Buffer);
    }
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (!isObject(value)) throw new Error('key document is not a JSON object');
    return value;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

export interface JwsVerifierOptions {
  issuer: string;
  audience?: string | readonly string[] | undefined;
  /** Explicit allowlist: a token whose alg is not here is refused before any key is looked at. */
  algorithms: readonly string[];
  clockToleranceMs: number;
  maxAgeMs?: number | undefined;
  /** Accepted `typ` headers (normalised); undefined = any except types that are never access tokens. */
  types?: readonly string[] | undefined;
  /** Accepted `token_use` claim values; undefined = absent or `access`. */
  tokenUses?: readonly string[] | undefined;
  /** Require `token_use` to be present. */
  requireTokenUse?: boolean;
}

export type VerifyResult =
  | { ok: true; header: Json; payload: Json; key: VerificationKey }
  | { ok: false; code: 'invalid_token' | 'token_expired' | 'service_unavailable'; detail: string };

const fail = (code: 'invalid_token' | 'token_expired' | 'service_unavailable', detail: string): VerifyResult => ({ ok: false, code, detail });

/** The parts of a compact JWS, decoded but not verified. */
export interface DecodedJws {
  readonly token: string;
  readonly segments: readonly string[];
  readonly header: Json | undefined;
  readonly payload: Json;
}

export type Classification = { kind: 'none' } | { kind: 'jws'; jws: DecodedJws } | { kind: 'refuse'; detail: string };

/**
 * What a bearer value is, read without verifying anything: a JWS whose payload we could read
 * (its header may still be bad), a JOSE object we refuse outright (oversized, JWE), or neither.
 */
export function classifyBearer(token: string): Classification {
  if (token.length > MAX_TOKEN_LENGTH) {
    // Refused without parsing; only JOSE-looking values are claimed, opaque ones go on down the chain.
    return token.startsWith('eyJ') && token.includes('.') ? { kind: 'refuse', detail: 'The token is too large.' } : { kind: 'none' };
  }
  const segments = token.split('.');
  if (segments.length === 5) {
    const header = B64URL.test(segments[0] ?? '') ? decodeSegment(segments[0] ?? '') : undefined;
    return header !== undefined && ('enc' in header || 'alg' in header) ? { kind: 'refuse', detail: 'Encrypted tokens are not accepted.' } : { kind: 'none' };
  }
  if (segments.length !== 3) return { kind: 'none' };
  const [h = '', p = ''] = segments;
  if (!B64URL.test(p)) return { kind: 'none' };
  const payload = decodeSegment(p);
  if (payload === undefined) return { kind: 'none' };
  const header = B64URL.test(h) ? decodeSegment(h) : undefined;
  return { kind: 'jws', jws: { token, segments, header, payload } };
}

type FastVerifier = (token: string) => Json;

const isNumericDate = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Verifies compact JWS tokens of one issuer against a key source. Header checks and the key's
 * algorithm binding happen here; signature, iss, aud, exp, nbf and maxAge in fast-jwt, with one
 * verifier per (key, alg) built once and reused.
 */
export class JwsVerifier {
  readonly #opts: JwsVerifierOptions;
  readonly #keys: KeySource;
  readonly #verifiers = new WeakMap<VerificationKey, Map<string, FastVerifier>>();
  readonly #types: ReadonlySet<string> | undefined;

  constructor(opts: JwsVerifierOptions, keys: KeySource) {
    this.#opts = opts;
    this.#keys = keys;
    this.#types = opts.types === undefined ? undefined : new Set(opts.types.map(normalizeTyp));
  }

  get keys(): KeySource {
    return this.#keys;
  }

  /** Verifies a token already classified as a JWS of this issuer. */
  async verify(jws: DecodedJws): Promise<VerifyResult> {
    const { header, payload, segments } = jws;
    if (header === undefined) return fail('invalid_token', 'The token header is malformed.');
    if (!B64URL.test(segments[2] ?? '')) return fail('invalid_token', 'The token signature is missing or malformed.');

    // RFC 8725 §3.1: the algorithm comes from our allowlist, never from the token alone.
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.#opts.algorithms.includes(alg)) return fail('invalid_token', 'The token algorithm is not accepted.');
    const kid = header.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH || !KID_RE.test(kid))) {
      return fail('invalid_token', 'The token key id is malformed.');
    }
    if (header.crit !== undefined) return fail('invalid_token', 'The token uses unsupported critical extensions.');
    if (header.enc !== undefined || header.zip !== undefined) return fail('invalid_token', 'Encrypted tokens are not accepted.');

    const typ = header.typ;
    if (typ !== undefined && typeof typ !== 'string') return fail('invalid_token', 'The token type is malformed.');
    const normalizedTyp = typ === undefined ? undefined : normalizeTyp(typ);
    if (this.#types !== undefined ? normalizedTyp === undefined || !this.#types.has(normalizedTyp) : normalizedTyp !== undefined && NON_ACCESS_TYPES.has(normalizedTyp)) {
      return fail('invalid_token', 'The token is not an access token.');
    }

    const claimProblem = this.#checkClaimShapes(payload);
    if (claimProblem !== undefined) return fail('invalid_token', claimProblem);

    const candidates = await this.#keys.candidates(kid, alg);
    if (candidates === 'unavailable') return fail('service_unavailable', 'The issuer keys are unavailable.');
    if (candidates.length === 0) return fail('invalid_token', 'The token key is unknown.');

    let expired = false;
    for (const key of candidates) {
      try {
        const verified = this.#verifierFor(key, alg)(jws.token);
        return { ok: true, header, payload: verified, key };
      } catch (err) {
        // fast-jwt checks the signature before the time claims: "expired" means correctly signed.
        if (err instanceof TokenError && err.code === TokenError.codes.expired) expired = true;
      }
    }
    return expired ? fail('token_expired', 'The token has expired.') : fail('invalid_token', 'The token is not valid.');
  }

  /** Claim types fast-jwt does not check strictly enough (THREATS 8, 9, 10, 11). */
  #checkClaimShapes(payload: Json): string | undefined {
    const { exp, nbf, iat, sub, jti, aud } = payload;
    if (!Number.isSafeInteger(exp) || (exp as number) < 0) return 'The token has no valid exp claim.';
    if (nbf !== undefined && !isNumericDate(nbf)) return 'The token nbf claim is malformed.';
    if (iat !== undefined && !isNumericDate(iat)) return 'The token iat claim is malformed.';
    if (this.#opts.maxAgeMs !== undefined && iat === undefined) return 'The token has no iat claim.';
    if (sub !== undefined && typeof sub !== 'string') return 'The token sub claim is malformed.';
    if (jti !== undefined && typeof jti !== 'string') return 'The token jti claim is malformed.';
    if (aud !== undefined && typeof aud !== 'string' && !(Array.isArray(aud) && aud.every((a) => typeof a === 'string'))) return 'The token aud claim is malformed.';
    const use = payload.token_use;
    if (use === undefined ? this.#opts.requireTokenUse === true : typeof use !== 'string' || !(this.#opts.tokenUses ?? ['access']).includes(use)) {
      return 'The token is not an access token.';
    }
    const ptyp = payload.typ;
    if (ptyp !== undefined && (typeof ptyp !== 'string' || NON_ACCESS_PAYLOAD_TYPES.has(ptyp.toLowerCase()))) return 'The token is not an access token.';
    return undefined;
  }

  #verifierFor(key: VerificationKey, alg: string): FastVerifier {
    let byAlg = this.#verifiers.get(key);
    if (byAlg === undefined) {
      byAlg = new Map();
      this.#verifiers.set(key, byAlg);
    }
    let verifier = byAlg.get(alg);
    if (verifier === undefined) {
      const { audience, maxAgeMs } = this.#opts;
      verifier = createVerifier({
        key: key.pem,
        algorithms: [alg as 'RS256'],
        allowedIss: this.#opts.issuer,
        ...(audience !== undefined ? { allowedAud: typeof audience === 'string' ? audience : [...audience] } : {}),
        // fast-jwt skips the aud check when the claim is absent: require it when an audience is set.
        requiredClaims: ['exp', ...(maxAgeMs !== undefined ? ['iat'] : []), ...(audience !== undefined ? ['aud'] : [])],
        clockTolerance: this.#opts.clockToleranceMs,
        ...(maxAgeMs !== undefined ? { maxAge: maxAgeMs } : {}),
        cache: VERIFIER_CACHE_SIZE,
      }) as FastVerifier;
      byAlg.set(alg, verifier);
    }
    return verifier;
  }
}

// ---------------------------------------------------------------------------------------------
// Claims -> identity

/** A dotted path into the payload, own properties only (no prototype lookups). */
export function claimAt(payload: Json, path: string): unknown {
  let node: unknown = payload;
  for (const part of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

const cleanString = (v: unknown, max: number): string | undefined =>
  typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL.test(v) ? v : undefined;

function stringList(v: unknown, valid: (s: string) => boolean, splitString: boolean): string[] {
  const items = typeof v === 'string' ? (splitString ? v.split(' ') : [v]) : Array.isArray(v) ? v : [];
  const out: string[] = [];
  for (const item of items) if (typeof item === 'string' && item !== '' && valid(item) && !out.includes(item)) out.push(item);
  return out;
}

const validGroup = (g: string): boolean => g.length <= 256 && !CONTROL.test(g) && !g.includes(',');
const validScope = (s: string): boolean => s.length <= 256 && SCOPE_TOKEN.test(s);

export interface ClaimsMapping {
  username?: string | undefined;
  email?: string | undefined;
  groups?: string | undefined;
  scopes?: string | undefined;
}

/** Identity from verified claims; undefined when no acceptable username can be found (THREATS 91). */
export function identityFromClaims(payload: Json, mapping: ClaimsMapping | undefined, name: string, external: boolean): Identity | undefined {
  const rawUser = mapping?.username !== undefined ? claimAt(payload, mapping.username) : (payload.preferred_username ?? payload.sub);
  const user = cleanString(rawUser, 256);
  if (user === undefined) return undefined;
  const email = cleanString(claimAt(payload, mapping?.email ?? 'email'), 320);
  const groups = stringList(claimAt(payload, mapping?.groups ?? 'groups'), validGroup, false);
  const scopes =
    mapping?.scopes !== undefined
      ? stringList(claimAt(payload, mapping.scopes), validScope, true)
      : payload.scope !== undefined
        ? stringList(payload.scope, validScope, true)
        : stringList(payload.scp, validScope, true);
  const amrClaim = stringList(payload.amr, (a) => a.length <= 32 && !CONTROL.test(a), false);
  const amr = amrClaim.length > 0 ? amrClaim : ['jwt'];
  const authTime = isNumericDate(payload.auth_time) ? Math.floor(payload.auth_time as number) : isNumericDate(payload.iat) ? Math.floor(payload.iat as number) : 0;
  const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
  return {
    user,
    email,
    groups,
    scopes,
    method: 'jwt',
    authenticator: name,
    mfa: amr.some((a) => MFA_AMR.has(a)),
    amr,
    authTime,
    subject: external && sub !== undefined ? `${String(payload.iss)}#${sub}` : (sub ?? user),
    tokenId: typeof payload.jti === 'string' ? payload.jti : undefined,
    expiresAt: payload.exp as number,
  };
}

// ---------------------------------------------------------------------------------------------
// Verified-token cache

/** What an accepted token was found to be, minus everything that can change after issuance. */
interface VerifiedToken {
  /** Frozen: handed out on every hit. */
  readonly identity: Identity;
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
  async function liveChecks(jti: string | undefined, fam: string | undefined, sub: unknown): Promise<Rejected | undefined> {
    if (denylist === undefined) return undefined;
    if (denylist.isRevoked(jti, fam)) return rejected('token_revoked');
    if (familyCheck !== undefined && fam !== undefined) return familyCheck.check(sub, fam);
    return undefined;
  }

  async function authenticate(req: AuthRequest): Promise<AuthOutcome> {
    const value = bearerValue(req.headers);
    if (value === undefined) return NOT_MINE;

    const hit = cache.get(value);
    if (hit !== undefined) {
      // Only a token this authenticator accepted (so "mine") is here; stale entries are verified afresh.
      if (Date.now() <= hit.validUntil && source.holds(hit.key)) {
        const problem = await liveChecks(hit.jti, hit.fam, hit.sub);
        return problem ?? authenticated(hit.identity);
      }
      cache.delete(value);
    }

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
      if (ttl > 0) cache.set(value, { identity: frozen, validUntil: until, key: result.key, jti, fam, sub: payload.sub }, { ttl });
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
