// Picks and opens the configured state store (SPEC 8). Drivers are imported on demand so a
// memory or sqlite gateway never loads ioredis; the helpers they share live in ./shared.ts, so
// no driver imports this module back (no import circle).
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Secret, StoreConfig } from '../config/schema.js';
import type { RedisTarget } from './redis.js';
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
      const { RedisStore, parseRedisNode } = await import('./redis.js');
      const redis = cfg?.redis;
      // The config loader normally resolves { file } secrets; accept an unresolved one too.
      const read = (secret: Secret): string => (typeof secret === 'string' ? secret : readFileSync(resolve(opts.configDir, secret.file), 'utf8').trim());
      const password = redis?.password === undefined ? {} : { password: read(redis.password) };
      let target: RedisTarget;
      if (redis?.sentinels !== undefined) {
        if (redis.name === undefined) throw new Error('store.redis.name is required with sentinels');
        target = { sentinels: redis.sentinels.map(parseRedisNode), name: redis.name, ...password };
      } else if (redis?.cluster !== undefined) {
        target = { cluster: redis.cluster.map(parseRedisNode), ...password };
      } else if (redis?.url !== undefined) {
        target = { url: read(redis.url) };
      } else {
        throw new Error('store.redis needs url, sentinels or cluster');
      }
      const store = new RedisStore({ ...target, keyPrefix: redis?.keyPrefix ?? DEFAULT_REDIS_PREFIX, log: opts.log });
      await store.connected();
      return store;
    }
    default:
      throw new Error(`unknown store driver: ${String(driver)}`);
  }
}
