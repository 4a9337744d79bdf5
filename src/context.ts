// The services every authenticator and endpoint is built with. server.ts assembles one
// GatewayContext per loaded config; a reload builds a new one and swaps it atomically.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config/schema.js';
import type { Store } from './store/types.js';
import type { ErrorCode } from './errors.js';
import type { Metrics } from './ops/metrics.js';

export interface UserRecord {
  readonly username: string;
  readonly email?: string | undefined;
  readonly groups: readonly string[];
  readonly disabled: boolean;
  /** Password hash in any supported format (never logged). Undefined: password login impossible. */
  readonly passwordHash?: string | undefined;
  /** This user must complete MFA at login. */
  readonly mfaRequired: boolean;
  /**
   * Changes whenever the password, disabled flag or groups change: caches keyed on it stop
   * matching, so a changed password or a disabled user stops working at once.
   */
  readonly version: string;
}

/** `UserDirectory.peek`'s answer when the user is not known without a lookup. */
export const NOT_IN_MEMORY: unique symbol = Symbol('not in memory');

/**
 * `directory.peek(username)`, or NOT_IN_MEMORY when the directory has no `peek`. (Not
 * `peek?.() ?? NOT_IN_MEMORY`: that would turn a definite "no such user" into "ask the directory".)
 */
export function peekUser(directory: UserDirectory, username: string): UserRecord | undefined | typeof NOT_IN_MEMORY {
  return directory.peek ? directory.peek(username) : NOT_IN_MEMORY;
}

export interface UserDirectory {
  /** By username, or by email when `login.identifiers` allows it. */
  lookup(login: string): Promise<UserRecord | undefined>;
  /** By username only. */
  get(username: string): Promise<UserRecord | undefined>;
  /**
   * `get` without waiting, when the answer is already in memory (the users file, a warm cache):
   * the record, undefined for "no such user", or NOT_IN_MEMORY when only `get` can tell.
   * The hot path uses it to answer a warm credential without a promise.
   */
  peek?(username: string): UserRecord | undefined | typeof NOT_IN_MEMORY;
  /** Called with a username (or undefined for "everything may have changed") after a change. */
  onChange(listener: (username?: string) => void): () => void;
  /**
   * One password hash of each cost shape the directory holds (algorithm and parameters), the
   * same array until the users change; absent when the directory cannot list them (PostgreSQL).
   * Unknown users' answers are timed against these (src/credentials/login-timing.ts).
   */
  hashShapes?(): readonly string[] | undefined;
  close(): Promise<void>;
}

export type LockState = { locked: false } | { locked: true; retryAfterSeconds: number };

/**
 * One attempt reserved against an account and an address before a secret is checked (see
 * `Lockout.reserve`). Exactly one of `succeeded` / `failed` must be called once the secret is checked.
 */
export type AttemptReservation =
  | {
      readonly granted: true;
      /** The secret was right: resets the account's counter and gives the address its attempt back. */
      succeeded(): Promise<void>;
      /** The secret was wrong: the attempt stays counted; `newlyLocked` when this one set a lock. */
      failed(): Promise<LockState & { newlyLocked?: boolean }>;
    }
  | { readonly granted: false; readonly retryAfterSeconds: number };

export interface Lockout {
  /**
   * Atomically takes one of the account's and the address's attempts for this window, before any
   * hashing: at most `maxFailures` guesses are ever evaluated per account, however many arrive at
   * once (issue 9.7). Not granted = locked (429).
   */
  reserve(account: string, address: string): Promise<AttemptReservation>;
  /** Read-only lock state (cheap checks, e.g. cached Basic credentials). */
  check(account: string, address: string): Promise<LockState>;
  /** Unreserved failure count (kept for callers that check before reserving became available). */
  recordFailure(account: string, address: string): Promise<LockState>;
  recordSuccess(account: string): Promise<void>;
}

export type PasswordCheck =
  | { ok: true; user: UserRecord }
  | { ok: false; code: ErrorCode; retryAfterSeconds?: number };

export interface PublicJwk {
  kid: string;
  alg: string;
  kty: string;
  use: 'sig';
  [k: string]: unknown;
}

export interface SigningKeys {
  /** The active signing key's kid and alg. */
  readonly active: { kid: string; alg: 'EdDSA' | 'ES256' | 'RS256' };
  /** Sign a JWT payload with the active key; `typ` goes in the header. */
  sign(payload: Record<string, unknown>, opts?: { typ?: string }): string;
  /** Public key (PEM) and alg for a kid, for verification. */
  publicKey(kid: string): { alg: string; pem: string } | undefined;
  /** JWKS document with every configured key (rotation). */
  jwks(): { keys: PublicJwk[] };
}

export interface GatewayContext {
  readonly config: Config;
  /** Directory of the config file: relative paths (plugins, users file, keys) resolve against it. */
  readonly configDir: string;
  readonly publicUrl: URL;
  /** e.g. "/.auth" */
  readonly prefix: string;
  readonly store: Store;
  readonly users: UserDirectory;
  readonly lockout: Lockout;
  readonly signing: SigningKeys;
  readonly log: FastifyBaseLogger;
  /** Audit events' own stream (`audit.destination`); absent: they go to `log` (src/ops/audit.ts). */
  readonly audit?: FastifyBaseLogger | undefined;
  /** Secret for keyed hashes of credentials in caches (random per process unless configured). */
  readonly cacheKey: Buffer;
  /** Prometheus metrics (absent in unit tests that build a context by hand). */
  readonly metrics?: Metrics | undefined;
}
