// Second factors of one user (SPEC 5 `mfa`, SPEC 6 `/mfa/*`, SPEC 8): TOTP (RFC 6238, otplib),
// recovery codes, and the bookkeeping the login, the MFA endpoints, the account page and the CLI
// share. Store layout (secrets sealed, codes keyed-hashed; see sealing.ts):
//   mfa:totp:<user>          sealed {secret, createdAt}: the active TOTP factor
//   mfa:totp:enroll:<user>   sealed secret of an enrolment not yet confirmed (TTL 10 min)
//   mfa:totp:step:<user>     last accepted time step; moved forward only by compare-and-set, so
//                            of two logins with one code exactly one wins (RFC 6238 §5.2)
//   mfa:recovery:<user>      {hashes, createdAt}: unused recovery codes, consumed by compare-and-set
//   mfa:recovery:fail:<user> failed recovery-code attempts (its own counter besides the lockout)
// WebAuthn credentials live in webauthn.ts and email codes in email.ts, under the same prefix.
import { randomInt } from 'node:crypto';
import { generateSecret, generateURI, verify as verifyTotp } from 'otplib';
import QRCode from 'qrcode';
import type { GatewayContext, UserRecord } from '../context.js';
import { audit } from '../ops/audit.js';
import { refCounted } from '../util/ref-counted.js';
import { EmailCodes } from './email.js';
import { loadMfaKeys, MfaKeys } from './sealing.js';
import { WebAuthnCredentials, type CredentialView } from './webauthn.js';

const TOTP_PERIOD = 30;
const ENROLL_TTL_MS = 10 * 60_000;
const DEFAULT_RECOVERY_CODES = 10;
const RECOVERY_FAIL_WINDOW_MS = 60 * 60_000;
/** Wrong recovery codes allowed per hour, on top of the login lockout. */
const MAX_RECOVERY_FAILURES = 10;
const CAS_RETRIES = 5;
const TOTP_RE = /^[0-9]{6}$/;
/** Recovery codes: 10 characters of an unambiguous alphabet, shown as xxxxx-xxxxx. */
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const RECOVERY_RE = /^[a-z2-9]{5}-?[a-z2-9]{5}$/;

const K = {
  totp: (u: string) => `mfa:totp:${u}`,
  enroll: (u: string) => `mfa:totp:enroll:${u}`,
  step: (u: string) => `mfa:totp:step:${u}`,
  recovery: (u: string) => `mfa:recovery:${u}`,
  recoveryFail: (u: string) => `mfa:recovery:fail:${u}`,
};

export type MfaMethod = 'totp' | 'recovery' | 'webauthn' | 'email' | 'enroll';

export interface FactorSummary {
  readonly totp: { readonly enabled: boolean; readonly createdAt: number | null };
  readonly recoveryCodesLeft: number;
  readonly webauthn: readonly CredentialView[];
  readonly email: boolean;
}

export interface TotpEnrollment {
  readonly secret: string;
  readonly otpauthUrl: string;
  readonly qrSvg: string;
}

export interface MfaServiceOptions {
  /** Clock in epoch ms (tests control TOTP time steps with it). */
  readonly now?: () => number;
}

type Ctx = Pick<GatewayContext, 'config' | 'store' | 'users' | 'log' | 'audit' | 'publicUrl' | 'lockout'>;

export class MfaService {
  readonly #ctx: Ctx;
  readonly #now: () => number;
  #keys: Promise<MfaKeys> | undefined;
  readonly email: EmailCodes;
  readonly webauthn: WebAuthnCredentials;

  constructor(ctx: Ctx, opts: MfaServiceOptions = {}) {
    this.#ctx = ctx;
    this.#now = opts.now ?? Date.now;
    // A configured key is checked now, so a short one stops the gateway at start.
    const configured = ctx.config.secrets?.mfa;
    if (typeof configured === 'string') this.#keys = Promise.resolve(new MfaKeys(configured));
    const keys = () => this.keys();
    this.email = new EmailCodes(ctx, keys);
    this.webauthn = new WebAuthnCredentials(ctx, keys, this.#now);
  }

  /** The sealing keys (loaded once; a store outage is retried on the next call). */
  keys(): Promise<MfaKeys> {
    this.#keys ??= loadMfaKeys(this.#ctx).catch((err: unknown) => {
      this.#keys = undefined;
      throw err;
    });
    return this.#keys;
  }

  get recoveryCodeCount(): number {
    return this.#ctx.config.mfa?.recoveryCodes ?? DEFAULT_RECOVERY_CODES;
  }

  /**
   * The second-step methods due after a correct password, or undefined when none is: the user
   * has a TOTP or WebAuthn factor, or `mfa.required` (then, without a factor, `enroll`).
   */
  async loginMethods(user: UserRecord): Promise<MfaMethod[] | undefined> {
    const [totp, recovery, creds] = await Promise.all([this.#ctx.store.get(K.totp(user.username)), this.recoveryCodesLeft(user.username), this.webauthn.count(user.username)]);
    const methods: MfaMethod[] = [];
    if (totp !== null) methods.push('totp');
    if (creds > 0) methods.push('webauthn');
    if (methods.length === 0 && !user.mfaRequired) return undefined;
    if (totp !== null && recovery > 0) methods.push('recovery');
    if (this.email.available(user)) methods.push('email');
    if (totp === null && creds === 0) methods.push('enroll');
    return methods;
  }

  /** For the account page: what the user has, never a secret. */
  async listFactors(user: UserRecord): Promise<FactorSummary> {
    const [totp, recoveryCodesLeft, webauthn] = await Promise.all([this.#totpRecord(user.username), this.recoveryCodesLeft(user.username), this.webauthn.list(user.username)]);
    return { totp: { enabled: totp !== undefined, createdAt: totp?.createdAt ?? null }, recoveryCodesLeft, webauthn, email: this.email.available(user) };
  }

  async hasTotp(user: string): Promise<boolean> {
    return (await this.#ctx.store.get(K.totp(user))) !== null;
  }

  // ---- TOTP -------------------------------------------------------------------------------

  /** Starts (or restarts) an enrolment: a new secret, kept sealed until confirmed. */
  async enrollTotp(user: string): Promise<TotpEnrollment> {
    const keys = await this.keys();
    const secret = generateSecret(); // 20 random bytes, base32
    await this.#ctx.store.set(K.enroll(user), keys.seal(secret, `totp-enroll:${user}`), ENROLL_TTL_MS);
    return this.#enrollment(user, secret);
  }

  /** The enrolment not yet confirmed (to show its QR code again after a wrong code). */
  async pendingEnrollment(user: string): Promise<TotpEnrollment | undefined> {
    const sealed = await this.#ctx.store.get(K.enroll(user));
    const secret = sealed === null ? undefined : (await this.keys()).open(sealed, `totp-enroll:${user}`);
    return secret === undefined ? undefined : this.#enrollment(user, secret);
  }

  async #enrollment(user: string, secret: string): Promise<TotpEnrollment> {
    const issuer = this.#ctx.config.mfa?.totp?.issuer ?? 'authgate';
    const otpauthUrl = generateURI({ issuer, label: user, secret });
    const qrSvg = await QRCode.toString(otpauthUrl, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { secret, otpauthUrl, qrSvg };
  }

  /**
   * Confirms the enrolment with a code from the new authenticator: the factor becomes active, the
   * code's time step is recorded as used (it cannot be replayed as the first login code), and a
   * new set of recovery codes is returned — the only time they are ever shown.
   */
  async confirmTotp(user: string, code: string): Promise<string[] | undefined> {
    if (!TOTP_RE.test(code)) return undefined;
    const keys = await this.keys();
    const sealed = await this.#ctx.store.get(K.enroll(user));
    if (sealed === null) return undefined;
    const secret = keys.open(sealed, `totp-enroll:${user}`);
    if (secret === undefined) return undefined;
    const step = await this.#matchingStep(secret, code, -1);
    if (step === undefined) return undefined;
    // Single use of the enrolment: of two concurrent confirmations one takes it.
    if ((await this.#ctx.store.take(K.enroll(user))) === null) return undefined;
    await this.#ctx.store.set(K.step(user), String(step));
    await this.#ctx.store.set(K.totp(user), keys.seal(JSON.stringify({ secret, createdAt: this.#now() }), `totp:${user}`));
    return this.regenerateRecoveryCodes(user);
  }

  /**
   * True when `code` is the user's current TOTP code (within `mfa.totp.window` steps) for a time
   * step later than the last accepted one, and this call moved the last step forward: a replay, or
   * the loser of two concurrent uses of one code, gets false.
   */
  async verifyTotp(user: string, code: string): Promise<boolean> {
    if (!TOTP_RE.test(code)) return false;
    const record = await this.#totpRecord(user);
    if (record === undefined) return false;
    for (let i = 0; i < CAS_RETRIES; i++) {
      const last = await this.#ctx.store.get(K.step(user));
      const lastStep = last === null ? -1 : Number(last);
      const step = await this.#matchingStep(record.secret, code, lastStep);
      if (step === undefined) return false;
      if (await this.#ctx.store.compareAndSet(K.step(user), last, String(step))) return true;
      // Someone accepted a code meanwhile: look again (the same code is now a replay).
    }
    return false;
  }

  async removeTotp(user: string, how: { ip?: string | undefined; method: string }): Promise<boolean> {
    const had = (await this.#ctx.store.get(K.totp(user))) !== null;
    await Promise.all([this.#ctx.store.delete(K.totp(user)), this.#ctx.store.delete(K.enroll(user)), this.#ctx.store.delete(K.recovery(user))]);
    // The last step stays: a removed-then-re-added factor cannot accept an old code again.
    if (had) audit(this.#log, 'mfa.removed', { user, ip: how.ip, method: how.method, reason: 'totp' });
    return had;
  }

  /** The time step `code` matches within the window and after `afterStep`, else undefined. */
  async #matchingStep(secret: string, code: string, afterStep: number): Promise<number | undefined> {
    const window = this.#ctx.config.mfa?.totp?.window ?? 1;
    const epoch = Math.floor(this.#now() / 1000);
    const result = await verifyTotp({ secret, token: code, epoch, epochTolerance: window * TOTP_PERIOD, period: TOTP_PERIOD });
    if (!result.valid) return undefined;
    const step = Math.floor(epoch / TOTP_PERIOD) + result.delta;
    return step > afterStep ? step : undefined;
  }

  async #totpRecord(user: string): Promise<{ secret: string; createdAt: number } | undefined> {
    const sealed = await this.#ctx.store.get(K.totp(user));
    if (sealed === null) return undefined;
    const json = (await this.keys()).open(sealed, `totp:${user}`);
    if (json === undefined) {
      this.#ctx.log.warn({ user }, 'mfa: a stored TOTP secret does not open with the current secrets.mfa');
      return undefined;
    }
    const v = JSON.parse(json) as { secret?: unknown; createdAt?: unknown };
    return typeof v.secret === 'string' && typeof v.createdAt === 'number' ? { secret: v.secret, createdAt: v.createdAt } : undefined;
  }

  // ---- Recovery codes ---------------------------------------------------------------------

  /** A new set of recovery codes (the old set stops working); stored keyed-hashed only. */
  async regenerateRecoveryCodes(user: string): Promise<string[]> {
    const keys = await this.keys();
    const codes = Array.from({ length: this.recoveryCodeCount }, () => newRecoveryCode());
    const hashes = codes.map((c) => keys.codeHash('recovery', user, normalizeRecovery(c)));
    await this.#ctx.store.set(K.recovery(user), JSON.stringify({ hashes, createdAt: this.#now() }));
    return codes;
  }

  async recoveryCodesLeft(user: string): Promise<number> {
    return parseRecovery(await this.#ctx.store.get(K.recovery(user)))?.hashes.length ?? 0;
  }

  /** True while the user may still try recovery codes (its own counter; THREATS 55). */
  async recoveryAllowed(user: string): Promise<boolean> {
    return Number((await this.#ctx.store.get(K.recoveryFail(user))) ?? 0) < MAX_RECOVERY_FAILURES;
  }

  /** Consumes a recovery code: true once per code, whoever races for it. */
  async useRecoveryCode(user: string, code: string): Promise<boolean> {
    const normalized = normalizeRecovery(code);
    if (!RECOVERY_RE.test(normalized)) {
      await this.#ctx.store.incr(K.recoveryFail(user), RECOVERY_FAIL_WINDOW_MS);
      return false;
    }
    const hash = (await this.keys()).codeHash('recovery', user, normalized.replace('-', ''));
    for (let i = 0; i < CAS_RETRIES; i++) {
      const current = await this.#ctx.store.get(K.recovery(user));
      const set = parseRecovery(current);
      if (set === undefined || !set.hashes.includes(hash)) break;
      const next = JSON.stringify({ ...set, hashes: set.hashes.filter((h) => h !== hash) });
      if (await this.#ctx.store.compareAndSet(K.recovery(user), current, next)) return true;
    }
    await this.#ctx.store.incr(K.recoveryFail(user), RECOVERY_FAIL_WINDOW_MS);
    return false;
  }

  static isRecoveryCodeShape(code: string): boolean {
    return RECOVERY_RE.test(normalizeRecovery(code));
  }

  // ---- Administration ---------------------------------------------------------------------

  /** Removes every factor of a user (lost phone: `authgate mfa reset`). Returns what was removed. */
  async resetUser(user: string, how: { method: string; ip?: string | undefined }): Promise<{ totp: boolean; webauthn: number; recoveryCodes: number }> {
    const recoveryCodes = await this.recoveryCodesLeft(user);
    const totp = (await this.#ctx.store.get(K.totp(user))) !== null;
    await Promise.all([this.#ctx.store.delete(K.totp(user)), this.#ctx.store.delete(K.enroll(user)), this.#ctx.store.delete(K.recovery(user)), this.#ctx.store.delete(K.recoveryFail(user))]);
    const webauthn = await this.webauthn.removeAll(user);
    audit(this.#log, 'mfa.removed', { user, ip: how.ip, method: how.method, reason: 'reset' });
    return { totp, webauthn, recoveryCodes };
  }

  close(): void {
    this.email.close();
  }

  get #log(): Pick<GatewayContext, 'log' | 'audit'> {
    return this.#ctx;
  }
}

function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 10; i++) s += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

function normalizeRecovery(code: string): string {
  return code.trim().toLowerCase().replace(/\s+/g, '').replace('-', '');
}

function parseRecovery(json: string | null): { hashes: string[]; createdAt: number } | undefined {
  if (json === null) return undefined;
  try {
    const v = JSON.parse(json) as { hashes?: unknown; createdAt?: unknown };
    if (Array.isArray(v.hashes) && v.hashes.every((h) => typeof h === 'string') && typeof v.createdAt === 'number') return { hashes: v.hashes as string[], createdAt: v.createdAt };
  } catch {
    // malformed: no codes
  }
  return undefined;
}

const shared = refCounted((ctx: GatewayContext) => new MfaService(ctx), (s) => s.close());

/** The MFA service of a loaded config, shared by the login, MFA and token endpoints. */
export function acquireMfaService(ctx: GatewayContext): { service: MfaService; release: () => void } {
  const held = shared(ctx);
  return { service: held.value, release: held.release };
}
