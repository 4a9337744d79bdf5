// One code attempt against an account (SPEC 6 "Brute force"): TOTP, recovery and email codes and
// passkey assertions all count in the login lockout, per account and per client address, so a
// second factor cannot be guessed faster than a password. This is the only place MFA touches
// `ctx.lockout`: switching to a reserve-then-verify lockout API changes this function alone.
import type { GatewayContext } from '../context.js';

export type AttemptResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'locked' | 'invalid_credentials'; readonly retryAfterSeconds?: number | undefined };

/**
 * Checks the lock, runs `verify` (which must consume what it accepts), and records the outcome.
 * `account` is the username (or, for an unknown passkey, a stand-in: unknown accounts count too).
 */
export async function attemptCode(
  ctx: Pick<GatewayContext, 'lockout'>,
  account: string,
  address: string,
  verify: () => Promise<boolean>,
): Promise<AttemptResult> {
  const lock = await ctx.lockout.check(account, address);
  if (lock.locked) return { ok: false, code: 'locked', retryAfterSeconds: lock.retryAfterSeconds };
  if (await verify()) {
    await ctx.lockout.recordSuccess(account);
    return { ok: true };
  }
  await ctx.lockout.recordFailure(account, address);
  return { ok: false, code: 'invalid_credentials' };
}
