// The session cookie's value: `<id>.<mac>`, where id is 32 random bytes and mac an HMAC-SHA256
// of it under `secrets.session` (base64url both). The first secret signs, every secret verifies
// (rotation). A value that is not exactly this shape is refused before any HMAC or store lookup.
// Each signer memoizes the public handle of the cookie values it verified: a new signer (reload,
// changed secrets) starts empty, and a value that fails verification is never remembered.
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { GatewayContext } from '../context.js';
import type { Secret } from '../config/schema.js';
import { StoreUnavailableError } from '../errors.js';

const ID_BYTES = 32;
const ENCODED_LENGTH = 43; // base64url of 32 bytes, no padding
const COOKIE_LENGTH = ENCODED_LENGTH * 2 + 1;
const COOKIE_RE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/;
const MIN_SECRET_BYTES = 32;
const VERIFIED_MAX = 50_000;
const VERIFIED_TTL_MS = 10 * 60_000;
/** Store key of the generated secret when `secrets.session` is not configured (SPEC 3). */
export const GENERATED_SECRET_KEY = 'secrets:session';

// Domain separation: the same secret never yields a MAC that is valid in another context.
const MAC_CONTEXT = 'authgate/session-cookie/v1\u0000';
const FINGERPRINT_CONTEXT = 'authgate/session-credential/v1\u0000';
const FORM_TOKEN_CONTEXT = 'authgate/form-token/v1\u0000';

export class SessionCookieSigner {
  readonly #keys: readonly Buffer[];
  /** Cookie value → its session handle, for correctly signed values only (the hot path). */
  readonly #verified = new LRUCache<string, string>({ max: VERIFIED_MAX, ttl: VERIFIED_TTL_MS });

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('secrets.session: at least one secret is required');
    for (const s of secrets) {
      if (Buffer.byteLength(s, 'utf8') < MIN_SECRET_BYTES) throw new Error(`secrets.session: every secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    this.#keys = secrets.map((s) => Buffer.from(s, 'utf8'));
  }

  /** A new secret session id (goes only into the cookie). */
  newId(): string {
    return randomBytes(ID_BYTES).toString('base64url');
  }

  /** The cookie value for an id, signed with the first secret. */
  sign(id: string): string {
    return `${id}.${this.#mac(this.#keys[0]!, MAC_CONTEXT, id)}`;
  }

  /** The id inside a correctly signed cookie value, else undefined. Constant-time per secret. */
  verify(value: string): string | undefined {
    if (value.length !== COOKIE_LENGTH || !COOKIE_RE.test(value)) return undefined;
    const id = value.slice(0, ENCODED_LENGTH);
    // Compare the encoded text, not decoded bytes: base64url has spare bits in its last
    // character, and a flipped character must never verify.
    const given = Buffer.from(value.slice(ENCODED_LENGTH + 1), 'latin1');
    let ok = false;
    for (const key of this.#keys) {
      const expected = Buffer.from(this.#mac(key, MAC_CONTEXT, id), 'latin1');
      if (timingSafeEqual(given, expected)) ok = true;
    }
    return ok ? id : undefined;
  }

  /**
   * `sessionHandle` of the id inside a correctly signed cookie value, else undefined. Memoized:
   * only values that verified under this signer's secrets are kept, so forged values cost an
   * HMAC each time and take no room.
   */
  handleOf(value: string): string | undefined {
    if (value.length !== COOKIE_LENGTH) return undefined;
    const cached = this.#verified.get(value);
    if (cached !== undefined) return cached;
    const id = this.verify(value);
    if (id === undefined) return undefined;
    const handle = sessionHandle(id);
    this.#verified.set(value, handle);
    return handle;
  }

  /** How many verified cookie values are memoized (tests, metrics). */
  get verifiedCount(): number {
    return this.#verified.size;
  }

  /** Keyed fingerprint of a credential (the password hash), with the first secret. */
  fingerprint(value: string): string {
    return this.#mac(this.#keys[0]!, FINGERPRINT_CONTEXT, value);
  }

  /** True when the fingerprint was made from `value` under any configured secret. */
  fingerprintMatches(value: string, fingerprint: string): boolean {
    const given = Buffer.from(fingerprint, 'latin1');
    let ok = false;
    for (const key of this.#keys) {
      const expected = Buffer.from(this.#mac(key, FINGERPRINT_CONTEXT, value), 'latin1');
      if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
    }
    return ok;
  }

  /**
   * The synchronizer token of a session's forms (the account page): bound to the session handle
   * and keyed with the session secret, so every instance on one store computes the same one and
   * nothing needs storing. A page of another session, or another site, cannot know it.
   */
  formToken(handle: string): string {
    return this.#mac(this.#keys[0]!, FORM_TOKEN_CONTEXT, handle);
  }

  /** True when `token` is the form token of `handle` under any configured secret. Constant-time. */
  formTokenMatches(handle: string, token: string): boolean {
    const given = Buffer.from(token, 'latin1');
    let ok = false;
    for (const key of this.#keys) {
      const expected = Buffer.from(this.#mac(key, FORM_TOKEN_CONTEXT, handle), 'latin1');
      if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
    }
    return ok;
  }

  #mac(key: Buffer, context: string, value: string): string {
    return createHmac('sha256', key).update(context).update(value).digest('base64url');
  }
}

/** The public handle of a secret id: what keys the store, the cache and the logs. */
export function sessionHandle(id: string): string {
  return hash('sha256', id, 'base64url');
}

function secretValue(secret: Secret, configDir: string): string {
  // The config loader resolves `{ file }` secrets; accept an unresolved one as well.
  return typeof secret === 'string' ? secret : readFileSync(resolve(configDir, secret.file), 'utf8').trim();
}

/** The configured `secrets.session` (one or a list), or undefined when none is configured. */
export function configuredSessionSecrets(ctx: Pick<GatewayContext, 'config' | 'configDir'>): string[] | undefined {
  const configured = ctx.config.secrets?.session;
  if (configured === undefined) return undefined;
  const list = Array.isArray(configured) ? configured : [configured];
  return list.map((s) => secretValue(s, ctx.configDir));
}

/**
 * The session secrets: `secrets.session`, else one generated secret kept in the store under
 * `secrets:session` (set-if-absent, so every instance on one store agrees; SPEC 3).
 */
export async function loadSessionSecrets(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'store'>): Promise<string[]> {
  const configured = configuredSessionSecrets(ctx);
  if (configured !== undefined) return configured;
  await ctx.store.setIfAbsent(GENERATED_SECRET_KEY, randomBytes(32).toString('base64url'));
  const stored = await ctx.store.get(GENERATED_SECRET_KEY);
  if (stored === null) throw new StoreUnavailableError();
  return [stored];
}
