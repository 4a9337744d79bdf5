// A GatewayContext for session unit tests: a real store, a user directory held in a Map.
import pino from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../src/config/schema.js';
import type { GatewayContext, UserDirectory, UserRecord } from '../../src/context.js';
import { MapUserDirectory, NO_LOCKOUT } from '../helpers/users.js';
import type { Store } from '../../src/store/types.js';

export class MapDirectory extends MapUserDirectory {
  #n = 0;
  put(u: Omit<UserRecord, 'version' | 'disabled' | 'mfaRequired' | 'groups'> & Partial<UserRecord>): UserRecord {
    return this.set({ groups: [], disabled: false, mfaRequired: false, ...u, version: `v${++this.#n}` });
  }
}

export function testContext(store: Store, users: UserDirectory, config: Partial<Config> = {}, publicUrl = 'http://127.0.0.1:8080'): GatewayContext {
  return {
    config: { routes: [], ...config } as Config,
    configDir: process.cwd(),
    publicUrl: new URL(publicUrl),
    prefix: '/.auth',
    store,
    users,
    lockout: NO_LOCKOUT,
    signing: undefined as unknown as GatewayContext['signing'],
    log: pino({ level: 'silent' }) as unknown as FastifyBaseLogger,
    cacheKey: Buffer.alloc(32, 7),
  };
}

/** Wraps a store and counts reads of session records, to prove a bad cookie costs no lookup. */
export function countingStore(inner: Store): Store & { reads: number; down: boolean } {
  const wrapper = Object.create(inner) as Store & { reads: number; down: boolean };
  wrapper.reads = 0;
  wrapper.down = false;
  const guard = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      if (wrapper.down) {
        const { StoreUnavailableError } = await import('../../src/errors.js');
        throw new StoreUnavailableError();
      }
      return fn.apply(inner, a);
    };
  wrapper.get = guard(async (key: string) => {
    if (key.startsWith('session:')) wrapper.reads++;
    return inner.get(key);
  });
  wrapper.set = guard(inner.set.bind(inner));
  wrapper.setIfAbsent = guard(inner.setIfAbsent.bind(inner));
  wrapper.delete = guard(inner.delete.bind(inner));
  wrapper.indexAdd = guard(inner.indexAdd.bind(inner));
  wrapper.indexRemove = guard(inner.indexRemove.bind(inner));
  wrapper.indexMembers = guard(inner.indexMembers.bind(inner));
  wrapper.publish = guard(inner.publish.bind(inner));
  wrapper.ping = guard(inner.ping.bind(inner));
  wrapper.subscribe = inner.subscribe.bind(inner);
  return wrapper;
}
