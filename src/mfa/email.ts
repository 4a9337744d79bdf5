// Email one-time codes (SPEC 6 `/mfa/email/*`; THREATS 57, 58): a 6-digit code mailed through
// `mfa.email.smtp` with nodemailer. One live code per user and purpose (a new send replaces the
// old), valid `codeTtl` (at most 10 minutes), single use, burnt after 5 wrong tries; only its
// keyed hash is stored. Sends are rate-limited per user, per address and per client address.
// An SMTP failure is a clear 503 (`service_unavailable`) and touches nothing else.
import { randomInt } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type { GatewayContext, UserRecord } from '../context.js';
import { GatewayError } from '../errors.js';
import { durationMs } from '../util/duration.js';
import { safeEqual } from '../util/secure.js';
import type { MfaKeys } from './sealing.js';

const MAX_EMAIL_TRIES = 5;
const MAX_CODE_TTL_MS = 10 * 60_000;
/** A user (and an address) gets at most one mail per `mfa.email.sendCooldown` (default 30 s, at least 1 s). */
const DEFAULT_SEND_COOLDOWN = '30s';
const CLIENT_SENDS_PER_WINDOW = 10;
const CLIENT_WINDOW_MS = 10 * 60_000;
const SMTP_TIMEOUT_MS = 5_000;

export type EmailPurpose = 'login' | 'notice';

const K = {
  code: (u: string, p: string) => `mfa:email:code:${u}:${p}`,
  tries: (u: string, p: string) => `mfa:email:tries:${u}:${p}`,
  userCooldown: (u: string) => `mfa:email:cooldown:user:${u}`,
  addressCooldown: (h: string) => `mfa:email:cooldown:addr:${h}`,
  clientSends: (h: string) => `mfa:email:sends:ip:${h}`,
};

export type SendResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

type Ctx = Pick<GatewayContext, 'config' | 'store' | 'log'>;

export class EmailCodes {
  readonly #ctx: Ctx;
  readonly #keys: () => Promise<MfaKeys>;
  #transport: Transporter | undefined;

  constructor(ctx: Ctx, keys: () => Promise<MfaKeys>) {
    this.#ctx = ctx;
    this.#keys = keys;
  }

  get configured(): boolean {
    return this.#ctx.config.mfa?.email !== undefined;
  }

  /** Email codes can be sent to this user. */
  available(user: UserRecord): boolean {
    return this.configured && user.email !== undefined && user.email !== '';
  }

  get codeTtlMs(): number {
    return Math.min(durationMs(this.#ctx.config.mfa?.email?.codeTtl, '10m'), MAX_CODE_TTL_MS);
  }

  get #cooldownMs(): number {
    return Math.max(1000, durationMs(this.#ctx.config.mfa?.email?.sendCooldown, DEFAULT_SEND_COOLDOWN));
  }

  /**
   * Mails a new code (replacing any live one). The answer is the same whether or not the user
   * has an address: only the cooldowns show, and they apply to every user alike.
   */
  async send(user: UserRecord | undefined, account: string, clientKey: string): Promise<SendResult> {
    const store = this.#ctx.store;
    const keys = await this.#keys();
    const sends = await store.incr(K.clientSends(keys.codeHash('ip', clientKey)), CLIENT_WINDOW_MS);
    if (sends > CLIENT_SENDS_PER_WINDOW) return { ok: false, retryAfterSeconds: await retryAfter(store, K.clientSends(keys.codeHash('ip', clientKey))) };
    if (!(await store.setIfAbsent(K.userCooldown(account), '1', this.#cooldownMs))) return { ok: false, retryAfterSeconds: await retryAfter(store, K.userCooldown(account)) };
    if (user === undefined || !this.available(user)) return { ok: true };
    const addressKey = K.addressCooldown(keys.codeHash('address', user.email!.toLowerCase()));
    if (!(await store.setIfAbsent(addressKey, '1', this.#cooldownMs))) return { ok: false, retryAfterSeconds: await retryAfter(store, addressKey) };

    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const purpose: EmailPurpose = 'login';
    await store.set(K.code(user.username, purpose), keys.codeHash('email', user.username, purpose, code), this.codeTtlMs);
    await store.delete(K.tries(user.username, purpose));
    const minutes = Math.round(this.codeTtlMs / 60_000);
    try {
      await this.#mail(user.email!, 'Your sign-in code', `Your sign-in code is ${code}\n\nIt is valid for ${minutes} minutes and can be used once. If you did not try to sign in, change your password.`);
    } catch (err) {
      // The code was never delivered: it must not stay usable, and the user may retry at once.
      await Promise.all([store.delete(K.code(user.username, purpose)), store.delete(K.userCooldown(account)), store.delete(addressKey)]).catch(() => undefined);
      this.#ctx.log.error({ err: smtpError(err) }, 'mfa: the email code could not be sent');
      throw new GatewayError('service_unavailable', 'The email service is unavailable; try another method or try again later.');
    }
    return { ok: true };
  }

  /** True once for the live code; 5 wrong tries burn it. */
  async verify(user: string, code: string): Promise<boolean> {
    const store = this.#ctx.store;
    const purpose: EmailPurpose = 'login';
    const stored = await store.get(K.code(user, purpose));
    if (stored === null) return false;
    const tries = await store.incr(K.tries(user, purpose), this.codeTtlMs);
    if (tries > MAX_EMAIL_TRIES) {
      await store.delete(K.code(user, purpose));
      return false;
    }
    const keys = await this.#keys();
    if (!/^[0-9]{6}$/.test(code) || !safeEqual(keys.codeHash('email', user, purpose, code), stored)) {
      if (tries >= MAX_EMAIL_TRIES) await store.delete(K.code(user, purpose));
      return false;
    }
    // Single use: of two concurrent verifications of the right code, one takes it.
    const taken = await store.take(K.code(user, purpose));
    if (taken !== stored) return false;
    await store.delete(K.tries(user, purpose));
    return true;
  }

  /** A notice to the user (recovery code used); best effort, never fails the caller. */
  async notify(user: UserRecord, subject: string, text: string): Promise<void> {
    if (!this.available(user)) return;
    try {
      await this.#mail(user.email!, subject, text);
    } catch (err) {
      this.#ctx.log.warn({ err: smtpError(err) }, 'mfa: notice mail not sent');
    }
  }

  close(): void {
    this.#transport?.close();
    this.#transport = undefined;
  }

  async #mail(to: string, subject: string, text: string): Promise<void> {
    const cfg = this.#ctx.config.mfa?.email;
    if (cfg === undefined) throw new Error('mfa.email is not configured');
    // smtp:// (STARTTLS when offered; ?requireTLS=true to insist), smtps:// (TLS); auth in the URL.
    this.#transport ??= nodemailer.createTransport(String(cfg.smtp), {
      connectionTimeout: SMTP_TIMEOUT_MS,
      greetingTimeout: SMTP_TIMEOUT_MS,
      socketTimeout: SMTP_TIMEOUT_MS * 2,
      logger: false,
      debug: false,
    } as Parameters<typeof nodemailer.createTransport>[1]);
    await this.#transport.sendMail({ from: cfg.from, to, subject, text });
  }
}

async function retryAfter(store: Ctx['store'], key: string): Promise<number> {
  const ms = await store.ttl(key);
  return ms > 0 ? Math.ceil(ms / 1000) : 1;
}

/** An SMTP failure for the log: its code and command, never credentials from the URL. */
function smtpError(err: unknown): Record<string, unknown> {
  const e = err as { code?: unknown; command?: unknown; responseCode?: unknown };
  return { code: e.code, command: e.command, responseCode: e.responseCode };
}
