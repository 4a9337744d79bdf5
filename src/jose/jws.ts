// Compact JWS verification against a key source (RFC 7515, 7519, 8725): header checks and the
// key's algorithm binding here, signature and time claims in fast-jwt. Used by the `jwt`
// authenticator (access tokens) and, through `verifyJwsSignature`, by OIDC ID and logout tokens.
import { constants, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { createVerifier, TokenError } from 'fast-jwt';
export type { Json } from './keys.js';
import { isObject, KID_RE, MAX_KID_LENGTH, type Json, type KeySource, type VerificationKey } from './keys.js';

/** Longer bearer values are refused unparsed (THREATS 13). */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Verified tokens remembered per key (fast-jwt's own LRU, bounded by each token's exp). */
const VERIFIER_CACHE_SIZE = 10_000;
const B64URL = /^[A-Za-z0-9_-]+$/;
/** `typ` headers that never denote an access token (RFC 8417, 8725 §3.11, OIDC logout). */
const NON_ACCESS_TYPES = new Set(['refresh+jwt', 'logout+jwt', 'secevent+jwt', 'id_token+jwt', 'dpop+jwt', 'authgate-assertion+jwt']);
/** Keycloak-style payload `typ` claims of tokens that are not access tokens. */
const NON_ACCESS_PAYLOAD_TYPES = new Set(['id', 'refresh', 'offline', 'logout']);

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

export const isNumericDate = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;

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


export type SignatureResult = { ok: true; header: Json; payload: Json } | { ok: false; unavailable: boolean; detail: string };

/**
 * The signature step alone (RFC 7515 §5.2) for tokens whose claims another step checks: OIDC ID
 * tokens (claims checked by openid-client) and back-channel logout tokens (src/oidc/logout-token.ts).
 * Same rules as `JwsVerifier`: alg from the allowlist and bound to the key, never `none`/HS*,
 * no `crit`, keys only from the configured source (never `jwk`/`jku` headers).
 */
export async function verifyJwsSignature(token: string, keys: KeySource, algorithms: readonly string[]): Promise<SignatureResult> {
  const bad = (detail: string): SignatureResult => ({ ok: false, unavailable: false, detail });
  if (token.length > MAX_TOKEN_LENGTH) return bad('The token is too large.');
  const segments = token.split('.');
  if (segments.length !== 3 || !segments.every((s) => B64URL.test(s))) return bad('The token is not a compact JWS.');
  const header = decodeSegment(segments[0] as string);
  const payload = decodeSegment(segments[1] as string);
  if (header === undefined || payload === undefined) return bad('The token is malformed.');
  const alg = header.alg;
  if (typeof alg !== 'string' || !algorithms.includes(alg)) return bad('The token algorithm is not accepted.');
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH || !KID_RE.test(kid))) return bad('The token key id is malformed.');
  if (header.crit !== undefined || header.enc !== undefined || header.zip !== undefined) return bad('The token uses unsupported header parameters.');
  const candidates = await keys.candidates(kid, alg);
  if (candidates === 'unavailable') return { ok: false, unavailable: true, detail: 'The issuer keys are unavailable.' };
  const signingInput = Buffer.from(`${segments[0]}.${segments[1]}`);
  const signature = Buffer.from(segments[2] as string, 'base64url');
  for (const key of candidates) {
    if (verifySignature(alg, key.pem, signingInput, signature)) return { ok: true, header, payload };
  }
  return bad(candidates.length === 0 ? 'The token key is unknown.' : 'The token signature is not valid.');
}

/** One JWS signature check with node:crypto (RFC 7518 §3); alg was already bound to the key. */
function verifySignature(alg: string, pem: string, data: Buffer, signature: Buffer): boolean {
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  const key = createPublicKey(pem);
  try {
    if (alg.startsWith('PS')) return cryptoVerify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
    if (alg.startsWith('ES')) return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    return cryptoVerify(hash, data, key, signature);
  } catch {
    return false;
  }
}
