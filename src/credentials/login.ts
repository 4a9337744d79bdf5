// The one password check behind every password entry point (Basic, /login, /token, /jwt/token):
// the user is resolved, an attempt is reserved against the account and the address (lockout,
// before any hashing), then the hash is checked. An unknown user, a disabled user and a wrong
// password get the same answer in about the same time (THREATS 25, 26; login-timing.ts). The
// audit events `login.success`, `login.failure` and `lockout` of every entry point come from here.
import { performance } from 'node:perf_hooks';
import type { GatewayContext, PasswordCheck, UserRecord } from '../context.js';
import { audit } from '../ops/audit.js';
import { attemptWithLockout } from './lockout.js';
import { loginTiming } from './login-timing.js';
import { burnPasswordTime, checksWholeHash, dummyHashLike, verifyPassword } from './passwords.js';

export interface VerifyLoginOptions {
  /** The hash check (tests count calls through it). */
  readonly verify?: (password: string, encoded: string) => Promise<boolean>;
  /** The entry point, for audit events: basic, password (/login), token-endpoint, jwt-endpoint … */
  readonly method?: string;
}

/** Login names longer than this designate nobody (and are not looked up). */
const MAX_LOGIN_LENGTH = 254;

export type VerifyLoginContext = Pick<GatewayContext, 'users' | 'lockout'> & Partial<Pick<GatewayContext, 'log' | 'audit'>>;

export async function verifyLogin(ctx: VerifyLoginContext, login: string, password: string, address: string, opts: VerifyLoginOptions = {}): Promise<PasswordCheck> {
  const verify = opts.verify ?? verifyPassword;
  const timing = loginTiming(ctx.users);
  const user = login.length > 0 && login.length <= MAX_LOGIN_LENGTH ? await ctx.users.lookup(login) : undefined;
  // The account is the user the name resolves to (username or email, any case), else the name
  // as typed: one lock per person, and an unknown name locks like a known one.
  const account = user?.username ?? login;
  const started = performance.now();
  let matched: UserRecord | undefined;

  const outcome = await attemptWithLockout(ctx.lockout, account, address, async () => {
    if (user?.passwordHash !== undefined) {
      const matches = await verify(password, user.passwordHash);
      if (checksWholeHash(password, user.passwordHash)) timing.observe(user.passwordHash, performance.now() - started);
      // A disabled user went through the same hash check: same timing, same answer as a wrong password.
      if (matches && !user.disabled) matched = user;
      else dummyHashLike(timing.slowestLike() ?? user.passwordHash); // prepares the unknown users' dummy off the request path
    } else {
      await burnPasswordTime(password, timing.slowestLike());
    }
    return matched !== undefined;
  });

  const sink = ctx.log === undefined ? undefined : { log: ctx.log, audit: ctx.audit };
  const fields = { user: user?.username ?? login.slice(0, MAX_LOGIN_LENGTH), ip: address, method: opts.method ?? 'password' };
  if (outcome.ok && matched !== undefined) {
    if (sink) audit(sink, 'login.success', fields);
    return { ok: true, user: matched };
  }
  if (!outcome.ok && outcome.reason === 'locked') {
    if (sink) audit(sink, 'login.failure', { ...fields, reason: 'locked' });
    return { ok: false, code: 'locked', retryAfterSeconds: outcome.retryAfterSeconds };
  }
  if (sink) {
    audit(sink, 'login.failure', { ...fields, reason: 'invalid_credentials' });
    if (!outcome.ok && outcome.newlyLocked) audit(sink, 'lockout', { ...fields, reason: 'max_failures' });
  }
  await timing.pad(started);
  return { ok: false, code: 'invalid_credentials' };
}
