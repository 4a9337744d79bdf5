// MFA secrets at rest (SPEC 8): TOTP secrets and WebAuthn credentials are sealed with
// AES-256-GCM under `secrets.mfa`, or under a key generated once and kept in the store (like the
// session secret) when none is configured. Each sealed value is bound to its record by the AAD
// (e.g. "totp:alice"), so a ciphertext copied onto another user's record does not open.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { GatewayContext } from '../context.js';
import { StoreUnavailableError } from '../errors.js';
import { keyedHash } from '../util/secure.js';

/** Store key of the generated key when `secrets.mfa` is not configured. */
export const GENERATED_MFA_SECRET_KEY = 'secrets:mfa';
const MIN_SECRET_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

export class MfaKeys {
  readonly #seal: Buffer;
  readonly #mac: Buffer;

  constructor(secret: string) {
    if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) throw new Error(`secrets.mfa: must be at least ${MIN_SECRET_BYTES} bytes`);
    const ikm = Buffer.from(secret, 'utf8');
    // One secret, two independent keys: sealing, and keyed hashes of one-time codes.
    this.#seal = Buffer.from(hkdfSync('sha256', ikm, 'authgate-mfa', 'seal/v1', 32));
    this.#mac = Buffer.from(hkdfSync('sha256', ikm, 'authgate-mfa', 'code-mac/v1', 32));
  }

  /** `v1.<iv>.<ciphertext+tag>` (base64url). */
  seal(plain: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#seal, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** The plaintext, or undefined when the value is malformed, tampered with or sealed for another record. */
  open(sealed: string, aad: string): string | undefined {
    const [version, ivText, bodyText] = sealed.split('.');
    if (version !== VERSION || ivText === undefined || bodyText === undefined) return undefined;
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#seal, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** Keyed hash of a one-time code (recovery and email codes are stored only this way). */
  codeHash(...parts: string[]): string {
    return keyedHash(this.#mac, ...parts);
  }
}

/** `secrets.mfa`, else the key generated once in the store (set-if-absent: every instance agrees). */
export async function loadMfaKeys(ctx: Pick<GatewayContext, 'config' | 'store'>): Promise<MfaKeys> {
  const configured = ctx.config.secrets?.mfa;
  if (typeof configured === 'string') return new MfaKeys(configured);
  if (configured !== undefined) throw new Error('secrets.mfa: the { file } secret was not resolved');
  await ctx.store.setIfAbsent(GENERATED_MFA_SECRET_KEY, randomBytes(32).toString('base64url'));
  const stored = await ctx.store.get(GENERATED_MFA_SECRET_KEY);
  if (stored === null) throw new StoreUnavailableError();
  return new MfaKeys(stored);
}
