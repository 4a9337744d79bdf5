// Helpers the three store drivers share (TTL rounding, error mapping, local subscribers, outage
// logging). Kept apart from index.ts, which imports the drivers, so the drivers never import it.
import { StoreUnavailableError } from '../errors.js';

export const DEFAULT_MEMORY_MAX_ENTRIES = 100_000;

/** The part of a pino / Fastify logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
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
