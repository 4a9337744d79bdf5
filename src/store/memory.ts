// In-process store (SPEC 8): for tests and throwaway runs. Everything lives in bounded LRU caches,
// so under pressure the least recently used entries are evicted; state is lost on restart.
import { LRUCache } from 'lru-cache';
import { DEFAULT_MEMORY_MAX_ENTRIES, normalizeTtl, Subscribers, unavailable, type StoreLogger } from './shared.js';
import type { Store } from './types.js';

/** Members kept per index; past it the oldest member is dropped. */
const MAX_INDEX_MEMBERS = 10_000;

export interface MemoryStoreOptions {
  maxEntries?: number;
  log?: StoreLogger;
}

export class MemoryStore implements Store {
  readonly driver = 'memory' as const;
  readonly #kv: LRUCache<string, string>;
  /** index -> member -> absolute expiry (Date.now() ms; Infinity = none). */
  readonly #indexes: LRUCache<string, Map<string, number>>;
  readonly #subs: Subscribers;
  #closed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    const max = opts.maxEntries ?? DEFAULT_MEMORY_MAX_ENTRIES;
    // ttlResolution 0: read the clock on every check; the default caches it for a timer tick,
    // which lets TTLs drift by however long the event loop was busy.
    this.#kv = new LRUCache({ max, ttlResolution: 0 });
    this.#indexes = new LRUCache({ max });
    const log = opts.log;
    this.#subs = new Subscribers((err, channel) => log?.error({ store: 'memory', channel, err: String(err) }, 'store subscriber failed'));
  }

  #check(): void {
    if (this.#closed) throw unavailable(new Error('store closed'));
  }

  async get(key: string): Promise<string | null> {
    this.#check();
    return this.#kv.get(key) ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.#check();
    const ttl = normalizeTtl(ttlMs);
    // ttl 0 = no expiry for lru-cache; an overwrite without TTL clears the old one (as Redis SET).
    this.#kv.set(key, value, { ttl: ttl ?? 0 });
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    this.#check();
    if (this.#kv.has(key)) return false;
    this.#kv.set(key, value, { ttl: normalizeTtl(ttlMs) ?? 0 });
    return true;
  }

  async compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    this.#check();
    if ((this.#kv.get(key) ?? null) !== expected) return false;
    this.#kv.set(key, value, { ttl: normalizeTtl(ttlMs) ?? 0 });
    return true;
  }

  async take(key: string): Promise<string | null> {
    this.#check();
    const value = this.#kv.get(key);
    if (value === undefined) return null;
    this.#kv.delete(key);
    return value;
  }

  async delete(key: string): Promise<void> {
    this.#check();
    this.#kv.delete(key);
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    this.#check();
    const current = this.#kv.get(key);
    const ttl = normalizeTtl(ttlMs) ?? 0;
    if (current === undefined) {
      this.#kv.set(key, String(by), { ttl });
      return by;
    }
    const parsed = Number.parseInt(current, 10);
    const next = (Number.isNaN(parsed) ? 0 : parsed) + by;
    // Fixed window: keep the TTL set by the first increment (or set one if the key had none).
    if (this.#kv.getRemainingTTL(key) === Infinity) this.#kv.set(key, String(next), { ttl });
    else this.#kv.set(key, String(next), { noUpdateTTL: true });
    return next;
  }

  async ttl(key: string): Promise<number> {
    this.#check();
    if (!this.#kv.has(key)) return -2;
    const remaining = this.#kv.getRemainingTTL(key);
    return remaining === Infinity ? -1 : Math.max(0, Math.floor(remaining));
  }

  async indexAdd(index: string, member: string, ttlMs?: number): Promise<void> {
    this.#check();
    const ttl = normalizeTtl(ttlMs);
    const now = Date.now();
    let members = this.#indexes.get(index);
    if (members === undefined) {
      members = new Map();
      this.#indexes.set(index, members);
    } else {
      pruneExpired(members, now);
    }
    members.delete(member); // re-insert at the end: insertion order = age, for the bound below
    members.set(member, ttl === undefined ? Infinity : now + ttl);
    if (members.size > MAX_INDEX_MEMBERS) {
      const oldest = members.keys().next().value;
      if (oldest !== undefined) members.delete(oldest);
    }
  }

  async indexRemove(index: string, member: string): Promise<void> {
    this.#check();
    const members = this.#indexes.get(index);
    if (members === undefined) return;
    members.delete(member);
    if (members.size === 0) this.#indexes.delete(index);
  }

  async indexMembers(index: string): Promise<string[]> {
    this.#check();
    const members = this.#indexes.get(index);
    if (members === undefined) return [];
    pruneExpired(members, Date.now());
    if (members.size === 0) {
      this.#indexes.delete(index);
      return [];
    }
    return [...members.keys()];
  }

  async publish(channel: string, message: string): Promise<void> {
    this.#check();
    this.#subs.deliver(channel, message);
  }

  subscribe(channel: string, handler: (message: string) => void): () => void {
    const sub = this.#subs.add(channel, handler);
    return () => void sub.remove();
  }

  async ping(): Promise<void> {
    this.#check();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#kv.clear();
    this.#indexes.clear();
    this.#subs.clear();
  }
}

function pruneExpired(members: Map<string, number>, now: number): void {
  for (const [member, expiresAt] of members) if (expiresAt <= now) members.delete(member);
}
