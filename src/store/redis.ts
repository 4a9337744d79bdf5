// Redis store (SPEC 8): several gateway instances share one Redis. Commands fail fast while
// disconnected (no offline queue, short timeouts) so callers fail closed with 503, while the
// client keeps reconnecting in the background and everything resumes when Redis returns.
// Publish goes through Redis pub/sub on a second connection; the publishing instance delivers
// to its own subscribers at once and drops its own echo.
// Besides one server (url), it reaches Redis Sentinel (the primary is asked of the sentinels, and
// asked again after a failover) or Redis Cluster. Every operation here touches a single key
// (each Lua script declares exactly one), so no operation spans hash slots; a plain PUBLISH in a
// Cluster reaches the subscribers on every node.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { errorSummary, normalizeTtl, OutageLog, Subscribers, unavailable, type StoreLogger } from './shared.js';
import { RESYNC_CHANNEL, type Store } from './types.js';

const CONNECT_TIMEOUT_MS = 2_000;
const COMMAND_TIMEOUT_MS = 1_500;
const MAX_RECONNECT_DELAY_MS = 2_000;
const FAILURE_LOG_INTERVAL_MS = 10_000;
/** Index keys live next to plain keys in Redis; this keeps the two apart. */
const INDEX_KEY_PREFIX = '__index:';
/** Sender-id length in published messages (hex of 8 random bytes), followed by '|'. */
const SENDER_ID_LENGTH = 16;

// INCRBY, and start the window's TTL when the key has none (first increment). ARGV[2] 0 = no TTL.
const INCR_LUA = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`;

// Sorted set member -> absolute expiry (server clock, ms; inf = none). Expired members are pruned
// and the key itself expires with its longest-lived member.
const NOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

const INDEX_ADD_LUA = `${NOW_LUA}
local ttl = tonumber(ARGV[2])
local score = 'inf'
if ttl > 0 then score = string.format('%.0f', now + ttl) end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == nil then return 0 end
if top[2] == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], top[2]) end
return 1`;

const INDEX_MEMBERS_LUA = `${NOW_LUA}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

// Compare-and-set: ARGV[1] '1' = expect the value ARGV[2], '0' = expect no key; then SET ARGV[3]
// with PX ARGV[4] (0 = no TTL). Returns 1 when it wrote.
const CAS_LUA = `
local cur = redis.call('GET', KEYS[1])
local match
if ARGV[1] == '1' then match = (cur == ARGV[2]) else match = (cur == false) end
if not match then return 0 end
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) else redis.call('SET', KEYS[1], ARGV[3]) end
return 1`;

interface ScriptCommands {
  authgateCas(key: string, hasExpected: string, expected: string, value: string, ttlMs: number): Promise<number>;
  authgateIncr(key: string, by: number, ttlMs: number): Promise<number>;
  authgateIndexAdd(key: string, member: string, ttlMs: number): Promise<number>;
  authgateIndexMembers(key: string): Promise<string[]>;
}
type Client = Redis | Cluster;
type ScriptedRedis = Client & ScriptCommands;

/** A host:port as the config spells Sentinel and Cluster nodes. */
export interface RedisNode {
  host: string;
  port: number;
}

/** Where Redis is: one server, a Sentinel-watched primary, or a Cluster (SPEC 8). */
export type RedisTarget =
  | { url: string }
  | { sentinels: RedisNode[]; name: string; password?: string }
  | { cluster: RedisNode[]; password?: string };

export function parseRedisNode(hostPort: string): RedisNode {
  const at = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, at), port: Number(hostPort.slice(at + 1)) };
}

export type RedisStoreOptions = RedisTarget & {
  /** Prepended to every key and pub/sub channel (default `authgate:`). */
  keyPrefix: string;
  log: StoreLogger;
  /** Overrides for tests; the defaults are the fail-fast settings above. */
  redisOptions?: RedisOptions;
};

/** After a failover the old primary answers writes with READONLY: reconnect (to the new one). */
const reconnectOnReadonly = (err: Error): boolean => err.message.startsWith('READONLY');

function openClient(opts: RedisStoreOptions): Client {
  const base: RedisOptions = {
    connectionName: 'authgate',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    reconnectOnError: reconnectOnReadonly,
  };
  if ('cluster' in opts) {
    // Cluster-level options (offline queue, pipelining, retry) are not per node.
    const { enableOfflineQueue: _q, retryStrategy: _r, ...node } = { ...base, ...opts.redisOptions };
    const clusterOptions: ClusterOptions = {
      keyPrefix: opts.keyPrefix,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
      redisOptions: { ...node, ...(opts.password === undefined ? {} : { password: opts.password }) },
    };
    return new Cluster(opts.cluster, clusterOptions);
  }
  const common: RedisOptions = { ...base, keyPrefix: opts.keyPrefix, enableAutoPipelining: true, ...opts.redisOptions };
  if ('sentinels' in opts) {
    return new Redis({
      ...common,
      sentinels: opts.sentinels,
      name: opts.name,
      ...(opts.password === undefined ? {} : { password: opts.password }),
      // No failoverDetector: its sentinel connections have no error listener (ioredis prints every
      // failed reconnect). A failover is noticed anyway: the sentinels kill the old primary's
      // clients, and a READONLY reply reconnects (reconnectOnError).
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    });
  }
  return new Redis(opts.url, common);
}

export class RedisStore implements Store {
  readonly driver = 'redis' as const;
  readonly #r: ScriptedRedis;
  #sub: Client | undefined;
  readonly #prefix: string;
  readonly #log: StoreLogger;
  readonly #outage: OutageLog;
  readonly #subOutage: OutageLog;
  readonly #subs: Subscribers;
  readonly #senderId = randomBytes(SENDER_ID_LENGTH / 2).toString('hex');
  #lastFailureLog = 0;
  #closed = false;

  constructor(opts: RedisStoreOptions) {
    this.#prefix = opts.keyPrefix;
    this.#log = opts.log;
    this.#outage = new OutageLog(opts.log, 'redis');
    this.#subOutage = new OutageLog(opts.log, 'redis', 'redis store subscriber connection');
    this.#subs = new Subscribers((err, channel) => this.#log.error({ store: 'redis', channel, err: String(err) }, 'store subscriber failed'));
    const r = openClient(opts);
    r.defineCommand('authgateIncr', { numberOfKeys: 1, lua: INCR_LUA });
    r.defineCommand('authgateCas', { numberOfKeys: 1, lua: CAS_LUA });
    r.defineCommand('authgateIndexAdd', { numberOfKeys: 1, lua: INDEX_ADD_LUA });
    r.defineCommand('authgateIndexMembers', { numberOfKeys: 1, lua: INDEX_MEMBERS_LUA });
    // Without an 'error' listener ioredis prints every failed reconnect attempt.
    r.on('error', (err: unknown) => this.#outage.failed(err));
    // A dropped connection is an outage even when the next reconnect succeeds without an error.
    r.on('close', () => {
      if (!this.#closed) this.#outage.failed(new Error('connection closed'));
    });
    r.on('ready', () => this.#outage.recovered());
    this.#r = r as ScriptedRedis;
  }

  /** Resolves once the first connection attempt has succeeded or failed (never rejects). */
  connected(): Promise<void> {
    const r = this.#r;
    if (r.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        r.off('ready', done).off('error', done).off('end', done);
        resolve();
      };
      const timer = setTimeout(done, CONNECT_TIMEOUT_MS + 500);
      r.once('ready', done).once('error', done).once('end', done);
    });
  }

  /**
   * Maps any client failure to StoreUnavailableError. Failures the connection events do not
   * report (timeouts on a stalled server, error replies) are logged, at most every 10 s.
   */
  #fail(err: unknown): never {
    if (!this.#outage.down) {
      const now = Date.now();
      if (now - this.#lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
        this.#lastFailureLog = now;
        this.#log.error({ store: 'redis', err: errorSummary(err) }, 'redis store command failed');
      }
    }
    throw unavailable(err);
  }

  async get(key: string): Promise<string | null> {
    try {
      return await this.#r.get(key);
    } catch (err) {
      return this.#fail(err);
    }
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    const ttl = normalizeTtl(ttlMs);
    try {
      if (ttl === undefined) await this.#r.set(key, value);
      else await this.#r.set(key, value, 'PX', ttl);
    } catch (err) {
      this.#fail(err);
    }
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    const ttl = normalizeTtl(ttlMs);
    try {
      const reply = ttl === undefined ? await this.#r.set(key, value, 'NX') : await this.#r.set(key, value, 'PX', ttl, 'NX');
      return reply === 'OK';
    } catch (err) {
      return this.#fail(err);
    }
  }

  async compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    try {
      return (await this.#r.authgateCas(key, expected === null ? '0' : '1', expected ?? '', value, normalizeTtl(ttlMs) ?? 0)) === 1;
    } catch (err) {
      return this.#fail(err);
    }
  }

  async take(key: string): Promise<string | null> {
    try {
      return await this.#r.getdel(key);
    } catch (err) {
      return this.#fail(err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#r.del(key);
    } catch (err) {
      this.#fail(err);
    }
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    try {
      return await this.#r.authgateIncr(key, by, normalizeTtl(ttlMs) ?? 0);
    } catch (err) {
      return this.#fail(err);
    }
  }

  async ttl(key: string): Promise<number> {
    try {
      return await this.#r.pttl(key);
    } catch (err) {
      return this.#fail(err);
    }
  }

  async indexAdd(index: string, member: string, ttlMs?: number): Promise<void> {
    try {
      await this.#r.authgateIndexAdd(INDEX_KEY_PREFIX + index, member, normalizeTtl(ttlMs) ?? 0);
    } catch (err) {
      this.#fail(err);
    }
  }

  async indexRemove(index: string, member: string): Promise<void> {
    try {
      await this.#r.zrem(INDEX_KEY_PREFIX + index, member);
    } catch (err) {
      this.#fail(err);
    }
  }

  async indexMembers(index: string): Promise<string[]> {
    try {
      return await this.#r.authgateIndexMembers(INDEX_KEY_PREFIX + index);
    } catch (err) {
      return this.#fail(err);
    }
  }

  async publish(channel: string, message: string): Promise<void> {
    // keyPrefix does not apply to channels; prefix them here so instances on other prefixes stay apart.
    const sent = this.#r.publish(this.#prefix + channel, `${this.#senderId}|${message}`);
    this.#subs.deliver(channel, message);
    try {
      await sent;
    } catch (err) {
      this.#fail(err);
    }
  }

  subscribe(channel: string, handler: (message: string) => void): () => void {
    const sub = this.#subs.add(channel, handler);
    if (sub.first && !this.#closed) {
      const conn = this.#subscriber();
      // When not ready yet, the 'ready' listener subscribes every channel.
      if (conn.status === 'ready') conn.subscribe(this.#prefix + channel).catch((err: unknown) => this.#subOutage.failed(err));
    }
    return () => {
      if (!sub.remove() || this.#sub?.status !== 'ready') return;
      this.#sub.unsubscribe(this.#prefix + channel).catch((err: unknown) => this.#subOutage.failed(err));
    };
  }

  /** The pub/sub connection, opened on first subscribe; it re-subscribes after each reconnect. */
  #subscriber(): Client {
    if (this.#sub !== undefined) return this.#sub;
    const r = this.#r;
    const sub =
      r instanceof Cluster
        ? r.duplicate([], { enableAutoPipelining: false, redisOptions: { ...r.options.redisOptions, autoResubscribe: false, connectionName: 'authgate-sub' } })
        : r.duplicate({ enableAutoPipelining: false, autoResubscribe: false, connectionName: 'authgate-sub' });
    sub.on('error', (err: unknown) => this.#subOutage.failed(err));
    sub.on('close', () => {
      if (!this.#closed) this.#subOutage.failed(new Error('connection closed'));
    });
    sub.on('ready', () => {
      this.#subOutage.recovered();
      // Messages published while this connection was not subscribed are lost (pub/sub is
      // at-most-once) — after a reconnect, or before the first connect while the store was
      // already in use — so every (re)subscription tells caches to start from the store again.
      this.#subs.deliver(RESYNC_CHANNEL, 'subscribed');
      const channels = this.#subs.channels();
      if (channels.length === 0) return;
      sub.subscribe(...channels.map((c) => this.#prefix + c)).catch((err: unknown) => this.#subOutage.failed(err));
    });
    sub.on('message', (prefixed: string, raw: string) => this.#onMessage(prefixed, raw));
    this.#sub = sub;
    return sub;
  }

  #onMessage(prefixed: string, raw: string): void {
    if (!prefixed.startsWith(this.#prefix)) return;
    const channel = prefixed.slice(this.#prefix.length);
    if (raw.length > SENDER_ID_LENGTH && raw.charCodeAt(SENDER_ID_LENGTH) === 0x7c /* | */) {
      if (raw.startsWith(this.#senderId)) return; // already delivered locally by publish()
      this.#subs.deliver(channel, raw.slice(SENDER_ID_LENGTH + 1));
    } else {
      this.#subs.deliver(channel, raw);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.#r.ping();
    } catch (err) {
      this.#fail(err);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subs.clear();
    const conns = this.#sub === undefined ? [this.#r] : [this.#r, this.#sub];
    await Promise.all(conns.map((c) => quitOrDisconnect(c)));
  }
}

/** QUIT waits for pending replies; when it cannot be sent (disconnected), stop reconnecting instead. */
async function quitOrDisconnect(conn: Client): Promise<void> {
  if (conn.status === 'end') return;
  if (conn.status === 'ready') {
    try {
      await conn.quit();
      return;
    } catch {
      // fall through
    }
  }
  conn.disconnect();
}
