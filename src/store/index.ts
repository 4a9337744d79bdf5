// Picks and opens the configured state store (SPEC 8). Drivers are imported on demand so a
// memory or sqlite gateway never loads ioredis; the helpers they share live in ./shared.ts, so
// no driver imports this module back (no import circle).
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { StoreConfig } from '../config/schema.js';
import { DEFAULT_MEMORY_MAX_ENTRIES, type StoreLogger } from './shared.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

export interface StoreOptions {
  /** Directory of the config file: a relative sqlite path resolves against it. */
  configDir: string;
  log: StoreLogger;
}

export const DEFAULT_SQLITE_PATH = './data/authgate.db';
export const DEFAULT_REDIS_PREFIX = 'authgate:';

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
