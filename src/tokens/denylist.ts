// Revocation of gateway-issued JWTs (SPEC 4, 8): by token id (`jti`) and by refresh family
// (`fam`). The hot path asks an in-process set (O(1), no store round trip); the store persists
// each revocation until the token could no longer be valid anyway, and pub/sub carries it to
// every instance within a second. While the store is down the in-process set keeps working.
import { LRUCache } from 'lru-cache';
import { RESYNC_CHANNEL, type Store } from '../store/types.js';
import { refCounted } from '../util/ref-counted.js';

export type RevocationKind = 'jti' | 'fam';

/** The part of a logger the denylist uses. */
export interface DenylistLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Denylist {
  /** True when the token id or its refresh family has been revoked (in-process, O(1)). */
  isRevoked(jti: string | undefined, fam: string | undefined): boolean;
  /** Revokes until `expSeconds` (epoch seconds: the latest time the token could be valid). */
  revoke(kind: RevocationKind, id: string, expSeconds: number): Promise<void>;
  /** Resolves once the revocations in the store have been loaded (or the first attempt failed). */
  loaded(): Promise<void>;
  /** Drops this holder's reference; the last release stops the subscription and timers. */
  release(): void;
}

export const REVOKED_CHANNEL = 'jwt:revoked';
const REVOKED_INDEX = 'jwt:revoked';
const revokedKey = (kind: RevocationKind, id: string): string => `jwt:revoked:${kind}:${id}`;

/** Bound of the in-process set; at ~100 bytes an entry this is ~20 MB at most. */
const MAX_ENTRIES = 200_000;
/** Re-read the store's index this often, for messages missed while Redis was unreachable. */
const RESYNC_MS = 60_000;
const RETRY_MIN_MS = 1_000;
const ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

interface RevocationMessage {
  k: RevocationKind;
  id: string;
  exp: number;
}

function parseMessage(text: string): RevocationMessage | undefined {
  try {
    const m = JSON.parse(text) as Partial<RevocationMessage>;
    if ((m.k === 'jti' || m.k === 'fam') && typeof m.id === 'string' && ID_RE.test(m.id) && Number.isSafeInteger(m.exp)) {
      return { k: m.k, id: m.id, exp: m.exp as number };
    }
  } catch {
    // not ours / malformed: ignored
  }
  return undefined;
}

class StoreDenylist {
  readonly #store: Store;
  readonly #log: DenylistLogger;
  readonly #set = new LRUCache<string, true>({ max: MAX_ENTRIES, ttlAutopurge: false });
  readonly #unsubscribe: () => void;
  #timer: NodeJS.Timeout | undefined;
  #loaded: Promise<void>;
  #retryMs = RETRY_MIN_MS;
  #closed = false;
  #warnedFull = false;

  constructor(store: Store, log: DenylistLogger) {
    this.#store = store;
    this.#log = log;
    const offRevoked = store.subscribe(REVOKED_CHANNEL, (text) => {
      const m = parseMessage(text);
      if (m !== undefined) this.#add(m.k, m.id, m.exp * 1000);
    });
    // Revocations broadcast while this instance could not hear them: read the list again now.
    const offResync = store.subscribe(RESYNC_CHANNEL, () => {
      if (this.#timer) clearTimeout(this.#timer);
      void this.#sync();
    });
    this.#unsubscribe = () => { offRevoked(); offResync(); };
    this.#loaded = this.#sync();
  }

  isRevoked(jti: string | undefined, fam: string | undefined): boolean {
    return (jti !== undefined && this.#set.has(`jti:${jti}`)) || (fam !== undefined && this.#set.has(`fam:${fam}`));
  }

  async revoke(kind: RevocationKind, id: string, expSeconds: number): Promise<void> {
    if (!ID_RE.test(id)) throw new Error('revocation id is malformed');
    const expMs = expSeconds * 1000;
    const ttl = expMs - Date.now();
    // Local first: this instance refuses the token even if the store is unreachable.
    this.#add(kind, id, expMs);
    if (ttl <= 0) return;
    await this.#store.set(revokedKey(kind, id), String(expSeconds), ttl);
    await this.#store.indexAdd(REVOKED_INDEX, `${kind}:${id}:${expSeconds}`, ttl);
    await this.#store.publish(REVOKED_CHANNEL, JSON.stringify({ k: kind, id, exp: expSeconds } satisfies RevocationMessage));
  }

  loaded(): Promise<void> {
    return this.#loaded;
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #add(kind: RevocationKind, id: string, expMs: number): void {
    const ttl = expMs - Date.now();
    if (ttl <= 0) return;
    if (this.#set.size >= MAX_ENTRIES && !this.#warnedFull) {
      this.#warnedFull = true;
      this.#log.warn({ max: MAX_ENTRIES }, 'JWT revocation list is full: the oldest revocations are dropped from memory');
    }
    this.#set.set(`${kind}:${id}`, true, { ttl: Math.ceil(ttl) });
  }

  /** Loads every live revocation from the store's index; reschedules itself. */
  async #sync(): Promise<void> {
    if (this.#closed) return;
    try {
      const members = await this.#store.indexMembers(REVOKED_INDEX);
      const now = Date.now();
      for (const member of members) {
        const [kind, id, exp] = member.split(':');
        const expSeconds = Number(exp);
        if ((kind !== 'jti' && kind !== 'fam') || id === undefined || !ID_RE.test(id) || !Number.isSafeInteger(expSeconds)) continue;
        if (expSeconds * 1000 <= now) {
          await this.#store.indexRemove(REVOKED_INDEX, member);
          continue;
        }
        this.#add(kind, id, expSeconds * 1000);
      }
      this.#retryMs = RETRY_MIN_MS;
      this.#schedule(RESYNC_MS);
    } catch (err) {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot load JWT revocations from the store; retrying');
      this.#schedule(this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, RESYNC_MS);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#sync(), ms);
    this.#timer.unref();
  }
}

/** One denylist per store, shared by the jwt authenticators and endpoints built on it. */
const sharedByStore = refCounted((store: Store, log: DenylistLogger) => new StoreDenylist(store, log), (dl) => dl.close());

/** The denylist of `store`, created on first use; call `release()` when done with it. */
export function acquireDenylist(store: Store, log: DenylistLogger): Denylist {
  const held = sharedByStore(store, log);
  const dl = held.value;
  return {
    isRevoked: (jti, fam) => dl.isRevoked(jti, fam),
    revoke: (kind, id, exp) => dl.revoke(kind, id, exp),
    loaded: () => dl.loaded(),
    release: held.release,
  };
}
