// One code attempt against an account (SPEC 6 "Brute force"): TOTP, recovery and email codes and
// passkey assertions all count in the login lockout, per account and per client address, so a
// second factor cannot be guessed faster than a password. This is the only place MFA touches
// `ctx.lockout`: switching to a reserve-then-verify lockout API changes this function alone.
//
// Code failures count under their own account key (`<user>#mfa`): a correct password resets the
// password counter, and must not reset the code counter too — otherwise whoever knows the
// password could sign in again between guesses (THREATS 55). A locked password account locks
// its codes as well; the per-address counter is the one the password shares.
import type { GatewayContext } from '../context.js';

export type AttemptResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'locked' | 'invalid_credentials'; readonly retryAfterSeconds?: number | undefined };

/** The lockout account second-factor attempts count against. */
function codeAccount(account: string): string {
  return `${account}#mfa`;
}

/**
 * Checks the locks, runs `verify` (which must consume what it accepts), and records the outcome.
 * `account` is the username (or, for an unknown passkey, a stand-in: unknown accounts count too).
 */
export async function attemptCode(
  ctx: Pick<GatewayContext, 'lockout'>,
  account: string,
  address: string,
  verify: () => Promise<boolean>,
): Promise<AttemptResult> {
  const [password, codes] = await Promise.all([ctx.lockout.check(account, address), ctx.lockout.check(codeAccount(account), address)]);
  for (const lock of [password, codes]) if (lock.locked) return { ok: false, code: 'locked', retryAfterSeconds: lock.retryAfterSeconds };
  if (await verify()) {
    await ctx.lockout.recordSuccess(codeAccount(account));
    return { ok: true };
  }
  await ctx.lockout.recordFailure(codeAccount(account), address);
  return { ok: false, code: 'invalid_credentials' };
}
