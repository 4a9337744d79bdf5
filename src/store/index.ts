// Picks and opens the configured state store (SPEC 8), plus the few helpers the three drivers
// share. Drivers are imported on demand so a memory or sqlite gateway never loads ioredis.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { StoreConfig } from '../config/schema.js';
import { StoreUnavailableError } from '../errors.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/** The part of a pino / Fastify logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StoreOptions {
  /** Directory of the config file: a relative sqlite path resolves against it. */
  configDir: string;
  log: StoreLogger;
}

export const DEFAULT_SQLITE_PATH = './data/authgate.db';
export const DEFAULT_REDIS_PREFIX = 'authgate:';
export const DEFAULT_MEMORY_MAX_ENTRIES = 100_000;

export async function createStore(cfg: StoreConfig | undefined, opts: StoreOptions): Promise<Store> {
  const driver = cfg?.driver ?? 'sqlite';
  switch (driver) {
    case 'memory': {
      const { MemoryStore } = await import('./memory.js');
      opts.log.warn({ store: 'memory' }, 'memory store: state is lost on restart');
      return new MemoryStore({ maxEntries: cfg?.memory?.maxEntries ?? DEFAULT_MEMORY_MAX_ENTRIES, log: opts.log });
    }
    case 'sqlite': {
      const { SqliteStore } = await import('./sqlite.js');
      const path = resolve(opts.configDir, cfg?.sqlite?.path ?? DEFAULT_SQLITE_PATH);
      mkdirSync(dirname(path), { recursive: true });
      return new SqliteStore({ path, log: opts.log });
    }
    case 'redis': {
      const { RedisStore } = await import('./redis.js');
      const secret = cfg?.redis?.url;
      if (secret === undefined) throw new Error('store.redis.url is required for the redis store');
      // The config loader normally resolves { file } secrets; accept an unresolved one too.
      const url = typeof secret === 'string' ? secret : readFileSync(resolve(opts.configDir, secret.file), 'utf8').trim();
      const store = new RedisStore({ url, keyPrefix: cfg?.redis?.keyPrefix ?? DEFAULT_REDIS_PREFIX, log: opts.log });
      await store.connected();
      return store;
    }
    default:
      throw new Error(`unknown store driver: ${String(driver)}`);
  }
}

/**
 * A TTL as the drivers apply it: undefined (or not finite) = no expiry; anything else is rounded
 * up to whole milliseconds and at least 1 ms, so a zero or negative TTL expires at once.
 */
export function normalizeTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined || !Number.isFinite(ttlMs)) return undefined;
  return ttlMs < 1 ? 1 : Math.ceil(ttlMs);
}

/** A backend failure as the caller sees it: StoreUnavailableError, original kept as `cause`. */
export function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const e = new StoreUnavailableError();
  e.cause = err;
  return e;
}

export type MessageHandler = (message: string) => void;

/** Local subscriber registry: one Set of handlers per channel. */
export class Subscribers {
  readonly #byChannel = new Map<string, Set<MessageHandler>>();
  readonly #onHandlerError: (err: unknown, channel: string) => void;

  constructor(onHandlerError: (err: unknown, channel: string) => void) {
    this.#onHandlerError = onHandlerError;
  }

  /** Adds a handler; `first` is true when the channel had none before. */
  add(channel: string, handler: MessageHandler): { first: boolean; remove: () => boolean } {
    let set = this.#byChannel.get(channel);
    const first = set === undefined;
    if (set === undefined) {
      set = new Set();
      this.#byChannel.set(channel, set);
    }
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const entry: MessageHandler = (m) => handler(m);
    set.add(entry);
    let removed = false;
    return {
      first,
      /** Returns true when this removed the channel's last handler. */
      remove: () => {
        if (removed) return false;
        removed = true;
        const current = this.#byChannel.get(channel);
        if (current === undefined) return false;
        current.delete(entry);
        if (current.size > 0) return false;
        this.#byChannel.delete(channel);
        return true;
      },
    };
  }

  has(channel: string): boolean {
    return this.#byChannel.has(channel);
  }

  channels(): string[] {
    return [...this.#byChannel.keys()];
  }

  /** Runs every handler of the channel; a throwing handler does not stop the others. */
  deliver(channel: string, message: string): void {
    const set = this.#byChannel.get(channel);
    if (set === undefined) return;
    for (const handler of set) {
      try {
        handler(message);
      } catch (err) {
        this.#onHandlerError(err, channel);
      }
    }
  }

  clear(): void {
    this.#byChannel.clear();
  }
}

/** Logs a backend outage once, and its end once (not once per failed call). */
export class OutageLog {
  #down = false;
  readonly #log: StoreLogger;
  readonly #driver: string;
  readonly #what: string;

  constructor(log: StoreLogger, driver: string, what = `${driver} store`) {
    this.#log = log;
    this.#driver = driver;
    this.#what = what;
  }

  get down(): boolean {
    return this.#down;
  }

  failed(err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.error({ store: this.#driver, err: errorSummary(err) }, `${this.#what} unavailable`);
  }

  recovered(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log.info({ store: this.#driver }, `${this.#what} available again`);
  }
}

/** Message and code only: driver errors can carry connection details, never log the whole object. */
export function errorSummary(err: unknown): { message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { message: err.message, code } : { message: err.message };
  }
  return { message: String(err) };
}
