// One code attempt against an account (SPEC 6 "Brute force"): TOTP, recovery and email codes and
// passkey assertions all count in the login lockout, per account and per client address, so a
// second factor cannot be guessed faster than a password. This is the only place MFA touches
// `ctx.lockout`. The code attempt is reserved in the store before the code is checked
// (attemptWithLockout), so concurrent guesses cannot get past the limit between check and count.
//
// Code failures count under their own account key (`<user>#mfa`): a correct password resets the
// password counter, and must not reset the code counter too — otherwise whoever knows the
// password could sign in again between guesses (THREATS 55). A locked password account locks
// its codes as well; the per-address counter is the one the password shares.
import type { GatewayContext } from '../context.js';
import { attemptWithLockout } from '../credentials/lockout.js';

export type AttemptResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'locked' | 'invalid_credentials'; readonly retryAfterSeconds?: number | undefined };

/** The lockout account second-factor attempts count against. */
function codeAccount(account: string): string {
  return `${account}#mfa`;
}

/**
 * Refuses while the password account is locked, then reserves one code attempt (account
 * `<user>#mfa` and the address) before running `verify` (which must consume what it accepts).
 * `account` is the username (or, for an unknown passkey, a stand-in: unknown accounts count too).
 */
export async function attemptCode(
  ctx: Pick<GatewayContext, 'lockout'>,
  account: string,
  address: string,
  verify: () => Promise<boolean>,
): Promise<AttemptResult> {
  const password = await ctx.lockout.check(account, address);
  if (password.locked) return { ok: false, code: 'locked', retryAfterSeconds: password.retryAfterSeconds };
  const outcome = await attemptWithLockout(ctx.lockout, codeAccount(account), address, verify);
  if (outcome.ok) return { ok: true };
  if (outcome.reason === 'locked') return { ok: false, code: 'locked', retryAfterSeconds: outcome.retryAfterSeconds };
  return { ok: false, code: 'invalid_credentials' };
}
