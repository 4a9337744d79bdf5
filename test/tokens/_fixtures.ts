// Shared fixtures for the token, introspection and OAuth tests: a GatewayContext over a real
// store with an in-memory user directory, and Redis key cleanup.
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../src/config/schema.js';
import type { GatewayContext, Lockout, SigningKeys, UserDirectory, UserRecord } from '../../src/context.js';
import { MapUserDirectory, NO_LOCKOUT } from '../helpers/users.js';
import type { Store } from '../../src/store/types.js';
import type { AuthRequest } from '../../src/pipeline/types.js';

export const REDIS_URL = 'redis://127.0.0.1:6379/0';
export const silentLog = pino({ level: 'silent' }) as unknown as FastifyBaseLogger;

export class FakeUsers extends MapUserDirectory {
  constructor(records: Partial<UserRecord>[] = []) {
    super();
    for (const r of records) this.put(r);
  }
  put(r: Partial<UserRecord>): void {
    const username = r.username ?? 'alice';
    this.set({ username, email: r.email, groups: r.groups ?? [], disabled: r.disabled ?? false, passwordHash: r.passwordHash, mfaRequired: r.mfaRequired ?? false, version: randomUUID() });
  }
}


const noSigning = {
  active: { kid: 'none', alg: 'EdDSA' },
  sign: () => {
    throw new Error('no signing keys in this fixture');
  },
  publicKey: () => undefined,
  jwks: () => ({ keys: [] }),
} satisfies SigningKeys;

export function makeContext(store: Store, opts: { config?: Partial<Config>; users?: UserDirectory; signing?: SigningKeys; lockout?: Lockout } = {}): GatewayContext {
  return {
    config: { routes: [], ...opts.config },
    configDir: process.cwd(),
    publicUrl: new URL('http://127.0.0.1:8080'),
    prefix: '/.auth',
    store,
    users: opts.users ?? new FakeUsers([{ username: 'alice', email: 'alice@example.test', groups: ['staff'] }]),
    lockout: opts.lockout ?? NO_LOCKOUT,
    signing: opts.signing ?? noSigning,
    log: silentLog,
    cacheKey: randomBytes(32),
  };
}

export function authRequest(headers: Record<string, string>): AuthRequest {
  return { method: 'GET', path: '/x', query: '', host: '127.0.0.1', headers, ip: '127.0.0.1', cookies: {}, log: silentLog };
}

/** Deletes every key under a test's unique Redis prefix. */
export { deleteRedisKeys } from '../helpers/redis.js';

/** Every value stored under a Redis prefix (to prove secrets are never stored). */
export async function redisDump(prefix: string): Promise<string> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) {
        const type = await r.type(k);
        out.push(k);
        if (type === 'string') out.push((await r.get(k)) ?? '');
        else if (type === 'set') out.push(...(await r.smembers(k)));
        else if (type === 'zset') out.push(...(await r.zrange(k, 0, -1)));
        else if (type === 'hash') out.push(JSON.stringify(await r.hgetall(k)));
        else if (type === 'list') out.push(...(await r.lrange(k, 0, -1)));
      }
    } while (cursor !== '0');
    return out.join('\n');
  } finally {
    r.disconnect();
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}
