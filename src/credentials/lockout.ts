// Brute-force lockout (SPEC 6 "Brute force"): fixed-window failure counters in the store, per
// account and per client address. The account is the resolved user's name when the login names
// a user (so `alice`, `alice@example.com` and `ALICE@example.com` share one counter), else the
// name as typed; both lowercased, so a lockout never reveals which accounts exist (THREATS 25).
//
// Attempts are reserved before the secret is checked (`reserve`): the counters are incremented
// atomically first and only the first `maxFailures` reservations of a window are granted, so a
// burst of concurrent guesses cannot get more evaluations than the limit (issue 9.7). A success
// hands its reservation back. `attemptWithLockout` wraps that for any secret (password, TOTP,
// recovery or email code).
import { isIPv4, isIPv6 } from 'node:net';
import type { LoginConfig } from '../config/schema.js';
import type { AttemptReservation, Lockout, LockState } from '../context.js';
import type { Store } from '../store/types.js';
import { unavailable } from '../store/shared.js';
import { durationMs } from '../util/duration.js';
import { sha256Hex } from '../util/secure.js';

export type LockoutConfig = NonNullable<LoginConfig['lockout']>;

export interface LockoutSettings {
  readonly maxFailures: number;
  readonly maxFailuresPerAddress: number;
  readonly windowMs: number;
  readonly durationMs: number;
}

export const DEFAULT_MAX_FAILURES = 5;

export function lockoutSettings(cfg: LockoutConfig | undefined): LockoutSettings {
  const maxFailures = cfg?.maxFailures ?? DEFAULT_MAX_FAILURES;
  return {
    maxFailures,
    maxFailuresPerAddress: cfg?.maxFailuresPerAddress ?? 4 * maxFailures,
    windowMs: durationMs(cfg?.window, '10m'),
    durationMs: durationMs(cfg?.duration, '15m'),
  };
}

/** The account a lockout counts against: the resolved username (else the login as typed), case-folded. */
export function accountKey(login: string): string {
  return sha256Hex(login.toLowerCase()).slice(0, 40);
}

/**
 * The address a lockout counts against: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by
 * its /64 (one subscriber usually holds a whole /64, so rotating inside it must not help).
 */
export function addressKey(ip: string): string {
  let a = ip.trim().toLowerCase();
  if (a.startsWith('::ffff:') && isIPv4(a.slice(7))) a = a.slice(7);
  if (isIPv6(a)) a = `${ipv6Groups(a).slice(0, 4).join(':')}::/64`;
  return sha256Hex(a).slice(0, 40);
}

function ipv6Groups(a: string): string[] {
  const zoneless = a.split('%')[0] ?? a;
  const [head = '', tail] = zoneless.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms) occupies two groups; only the first four matter here.
  const missing = Math.max(0, 8 - left.length - right.length);
  return [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right].map((g) => g.replace(/^0+(?=.)/, ''));
}

const K = {
  accountFailures: (a: string) => `lockout:fail:acct:${a}`,
  addressFailures: (a: string) => `lockout:fail:addr:${a}`,
  accountLock: (a: string) => `lockout:lock:acct:${a}`,
  addressLock: (a: string) => `lockout:lock:addr:${a}`,
};

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

export function createLockout(store: Store, cfg: LockoutConfig | undefined): Lockout & { readonly settings: LockoutSettings } {
  const settings = lockoutSettings(cfg);

  /** Remaining lock time in ms (0 = not locked) from a store `ttl` answer. */
  const remaining = (ttl: number): number => (ttl === -2 ? 0 : ttl === -1 ? settings.durationMs : ttl);

  const guard = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw unavailable(err);
    }
  };

  return {
    settings,

    check: (account, address) =>
      guard(async (): Promise<LockState> => {
        const [acct, addr] = await Promise.all([store.ttl(K.accountLock(accountKey(account))), store.ttl(K.addressLock(addressKey(address)))]);
        const ms = Math.max(remaining(acct), remaining(addr));
        return ms > 0 ? { locked: true, retryAfterSeconds: seconds(ms) } : { locked: false };
      }),

    recordFailure: (account, address) =>
      guard(async (): Promise<LockState> => {
        const acct = accountKey(account);
        const addr = addressKey(address);
        const [acctCount, addrCount] = await Promise.all([
          store.incr(K.accountFailures(acct), settings.windowMs),
          store.incr(K.addressFailures(addr), settings.windowMs),
        ]);
        const locks: Promise<boolean>[] = [];
        // setIfAbsent: concurrent failures past the threshold do not extend a running lock.
        if (acctCount >= settings.maxFailures) locks.push(store.setIfAbsent(K.accountLock(acct), '1', settings.durationMs));
        if (addrCount >= settings.maxFailuresPerAddress) locks.push(store.setIfAbsent(K.addressLock(addr), '1', settings.durationMs));
        if (locks.length === 0) return { locked: false };
        await Promise.all(locks);
        return { locked: true, retryAfterSeconds: seconds(settings.durationMs) };
      }),

    reserve: (account, address) =>
      guard(async (): Promise<AttemptReservation> => {
        const acct = accountKey(account);
        const addr = addressKey(address);
        // One round trip: the lock keys are read while the counters are taken.
        const [acctLock, addrLock, acctCount, addrCount] = await Promise.all([
          store.ttl(K.accountLock(acct)),
          store.ttl(K.addressLock(addr)),
          store.incr(K.accountFailures(acct), settings.windowMs),
          store.incr(K.addressFailures(addr), settings.windowMs),
        ]);
        const lockedMs = Math.max(remaining(acctLock), remaining(addrLock));
        if (lockedMs > 0 || acctCount > settings.maxFailures || addrCount > settings.maxFailuresPerAddress) {
          // Not granted: the address gets its attempt back, so a user retrying against a lock
          // someone else caused does not lock their own address. The account's count stays
          // (it is over the limit either way): were it handed back after a success had reset
          // it, it would go negative and buy extra guesses.
          await store.incr(K.addressFailures(addr), settings.windowMs, -1);
          return { granted: false, retryAfterSeconds: seconds(lockedMs > 0 ? lockedMs : settings.durationMs) };
        }
        let settled = false;
        return {
          granted: true,
          succeeded: () =>
            guard(async () => {
              if (settled) return;
              settled = true;
              await Promise.all([store.delete(K.accountFailures(acct)), store.incr(K.addressFailures(addr), settings.windowMs, -1)]);
            }),
          failed: () =>
            guard(async (): Promise<LockState & { newlyLocked?: boolean }> => {
              if (settled) return { locked: false };
              settled = true;
              const locks: Promise<boolean>[] = [];
              // This reservation's count is this failure's rank in the window.
              if (acctCount >= settings.maxFailures) locks.push(store.setIfAbsent(K.accountLock(acct), '1', settings.durationMs));
              if (addrCount >= settings.maxFailuresPerAddress) locks.push(store.setIfAbsent(K.addressLock(addr), '1', settings.durationMs));
              if (locks.length === 0) return { locked: false };
              const set = await Promise.all(locks);
              return { locked: true, retryAfterSeconds: seconds(settings.durationMs), newlyLocked: set.includes(true) };
            }),
        };
      }),

    recordSuccess: (account) =>
      guard(async () => {
        await store.delete(K.accountFailures(accountKey(account)));
      }),
  };
}

export type AttemptOutcome =
  | { readonly ok: true }
  /** Refused before anything was evaluated: the account or the address is locked (429). */
  | { readonly ok: false; readonly reason: 'locked'; readonly retryAfterSeconds: number }
  /** Evaluated and wrong (401); `newlyLocked`: this failure locked the account or the address. */
  | { readonly ok: false; readonly reason: 'wrong'; readonly newlyLocked: boolean };

/**
 * One attempt against an account: reserves it (refused while locked, without evaluating
 * anything), runs `evaluate` (true = the secret was right), then settles the reservation. The
 * one way every secret check — password, TOTP, recovery code, email code — counts toward the
 * lockout; `account` is the resolved username when there is one. Throws StoreUnavailableError
 * when the store is down (fail closed); an `evaluate` that throws counts as a failure.
 */
export async function attemptWithLockout(lockout: Lockout, account: string, address: string, evaluate: () => Promise<boolean>): Promise<AttemptOutcome> {
  const reservation = await lockout.reserve(account, address);
  if (!reservation.granted) return { ok: false, reason: 'locked', retryAfterSeconds: reservation.retryAfterSeconds };
  let right: boolean;
  try {
    right = await evaluate();
  } catch (err) {
    await reservation.failed().catch(() => undefined);
    throw err;
  }
  if (right) {
    await reservation.succeeded();
    return { ok: true };
  }
  const state = await reservation.failed();
  return { ok: false, reason: 'wrong', newlyLocked: state.newlyLocked === true };
}
