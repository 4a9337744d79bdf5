// One state interface behind the memory, sqlite and redis drivers (SPEC 8). Every method
// rejects with StoreUnavailableError when the backend cannot be reached: callers fail closed.

/**
 * Delivered locally (never published) when this instance may have missed cross-instance
 * messages — the redis subscriber reconnected, or the sqlite event poll failed for a while.
 * Whoever caches what other channels invalidate subscribes here and starts again from the store.
 */
export const RESYNC_CHANNEL = 'store:resync';

export interface Store {
  readonly driver: 'memory' | 'sqlite' | 'redis';
  /** A value, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  /** Set a value; ttlMs undefined = no expiry. */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Set only when absent (one-time use markers). True when this call set it. */
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean>;
  /**
   * Atomic compare-and-set: write `value` only when the current value equals `expected` (null =
   * absent or expired). True when this call wrote. Used where "only if nobody moved it since I
   * read it" matters across instances, e.g. the last accepted TOTP time step (RFC 6238 §5.2).
   */
  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean>;
  /** Atomically read and delete (single-use codes, refresh tokens). */
  take(key: string): Promise<string | null>;
  delete(key: string): Promise<void>;
  /**
   * Atomic counter: add `by` (default 1) and return the new value. The TTL starts at the first
   * increment of a window and is not extended by later ones (fixed-window counters for lockout).
   */
  incr(key: string, ttlMs: number, by?: number): Promise<number>;
  /** Remaining time to live in ms; -1 = no expiry; -2 = absent. */
  ttl(key: string): Promise<number>;
  /** Per-owner indexes, e.g. the ids of one user's tokens or sessions. */
  indexAdd(index: string, member: string, ttlMs?: number): Promise<void>;
  indexRemove(index: string, member: string): Promise<void>;
  indexMembers(index: string): Promise<string[]>;
  /** Cross-instance invalidation broadcast (redis pub/sub; in-process for memory and sqlite). */
  publish(channel: string, message: string): Promise<void>;
  /** Returns an unsubscribe function. Handlers run for messages from every instance, this one included. */
  subscribe(channel: string, handler: (message: string) => void): () => void;
  /** Throws StoreUnavailableError when unreachable; used by /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
