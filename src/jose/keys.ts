// Where verification keys come from (static PEMs, a JWKS URL, an issuer's discovery document)
// and which algorithm each key may verify (RFC 8725 §3.1: the algorithm is bound to the key).
// Shared by the `jwt` authenticator, OIDC ID tokens and back-channel logout tokens.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { GatewayContext } from '../context.js';

export const MAX_KID_LENGTH = 128;
/** A failed key fetch is retried at most this often while no key is known. */
const ERROR_RETRY_MS = 5_000;
/** Known keys are refreshed in the background once older than this. */
const KEYS_MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 3_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;
const MAX_KEYS = 100;
/** At most this many keys are tried for a token without a usable `kid`. */
const MAX_CANDIDATES = 4;
export const KID_RE = /^[\u0020-\u007e]+$/;

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

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
export function keyFromJwk(jwk: unknown, allowed: readonly string[]): VerificationKey | undefined {
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

export type KeyLookup = readonly VerificationKey[] | 'unavailable';

/** Where an authenticator's keys come from. */
export interface KeySource {
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

export class StaticKeySource implements KeySource {
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

