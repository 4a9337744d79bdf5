// The one password check behind every password entry point (Basic, /login, /token, /jwt/token):
// lockout first, then the user, then the hash. An unknown user, a disabled user and a wrong
// password get the same answer in about the same time (THREATS 25, 26).
import type { GatewayContext, PasswordCheck, UserDirectory } from '../context.js';
import { burnPasswordTime, dummyHashLike, passwordHashFormat, verifyPassword } from './passwords.js';

export interface VerifyLoginOptions {
  /** The hash check (tests count calls through it). */
  readonly verify?: (password: string, encoded: string) => Promise<boolean>;
}

/** Login names longer than this designate nobody (and are not looked up). */
const MAX_LOGIN_LENGTH = 254;

/**
 * A real hash recently verified in each directory: an unknown user burns the time of a hash of
 * the same algorithm and cost, so a directory of Django pbkdf2 hashes does not give unknown
 * users away by answering at argon2 speed.
 */
const hashShapes = new WeakMap<UserDirectory, string>();

export async function verifyLogin(
  ctx: Pick<GatewayContext, 'users' | 'lockout'>,
  login: string,
  password: string,
  address: string,
  opts: VerifyLoginOptions = {},
): Promise<PasswordCheck> {
  const verify = opts.verify ?? verifyPassword;
  // The account is the name as typed (case-folded), existing or not: a lockout reveals nothing.
  const lock = await ctx.lockout.check(login, address);
  if (lock.locked) return { ok: false, code: 'locked', retryAfterSeconds: lock.retryAfterSeconds };

  const user = login.length > 0 && login.length <= MAX_LOGIN_LENGTH ? await ctx.users.lookup(login) : undefined;
  let ok = false;
  if (user?.passwordHash !== undefined) {
    const matches = await verify(password, user.passwordHash);
    // A disabled user went through the same hash check: same timing, same answer as a wrong password.
    ok = matches && !user.disabled;
    if (passwordHashFormat(user.passwordHash) !== undefined && hashShapes.get(ctx.users) !== user.passwordHash) {
      hashShapes.set(ctx.users, user.passwordHash);
      dummyHashLike(user.passwordHash); // prepares the matching dummy off the request path
    }
  } else {
    await burnPasswordTime(password, hashShapes.get(ctx.users));
  }

  if (!ok || !user) {
    await ctx.lockout.recordFailure(login, address);
    return { ok: false, code: 'invalid_credentials' };
  }
  await ctx.lockout.recordSuccess(login);
  return { ok: true, user };
}
