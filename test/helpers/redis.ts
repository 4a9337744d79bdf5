// Redis clean-up for tests that use a unique key prefix on the shared server, and throwaway
// Redis processes (Sentinel, Cluster) for the tests that need their own.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** Deletes every key under `prefix` (a test's unique prefix). */
export async function deleteRedisKeys(prefix: string, url = REDIS_URL): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

// Throwaway Redis processes (Sentinel, Cluster) on free ports, for the tests that need their own
// servers: never the shared 127.0.0.1:6379. Every process is killed in teardown; waits are bounded.

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One command against 127.0.0.1:port on a short-lived connection. */
export async function redisCommand(port: number, ...args: (string | number)[]): Promise<unknown> {
  const r = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 2000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const [name, ...rest] = args;
    return await r.call(String(name), ...rest);
  } finally {
    r.disconnect();
  }
}

export interface RedisProcess {
  port: number;
  child: ChildProcess;
  /** SIGKILL, resolved once the process has exited. */
  kill(): Promise<void>;
}

/** redis-server (or, with `sentinel`, a sentinel) with a config file in `dir`, up and answering PING. */
export async function startRedisProcess(t: Teardown, dir: string, conf: string[], opts: { sentinel?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const file = join(dir, `${opts.sentinel ? 'sentinel' : 'redis'}-${port}.conf`);
  writeFileSync(file, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, ...conf, ''].join('\n'));
  // redis-sentinel is redis-server started in sentinel mode; use it when the package is installed.
  const hasSentinelBinary = spawnSync('redis-sentinel', ['--version']).error === undefined;
  const [cmd, args] = opts.sentinel && hasSentinelBinary ? ['redis-sentinel', [file]] : ['redis-server', opts.sentinel ? [file, '--sentinel'] : [file]];
  const child = spawn(cmd, args as string[], { stdio: 'ignore' });
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  t.teardown(kill);
  await until(async () => (await redisCommand(port, 'PING')) === 'PONG', 10_000, `${cmd} on ${port}`);
  return { port, child, kill };
}

export interface SentinelGroup {
  name: string;
  primary: RedisProcess;
  replica: RedisProcess;
  sentinels: RedisProcess[];
  /** The primary's port as the sentinels report it now. */
  primaryPort(): Promise<number>;
}

/** One primary, one replica and three sentinels (quorum 2) that know each other and the replica. */
export async function startSentinelGroup(t: Teardown, dir: string): Promise<SentinelGroup> {
  const name = 'authgate-test';
  const plain = ['save ""', 'appendonly no'];
  const primary = await startRedisProcess(t, dir, plain);
  const replica = await startRedisProcess(t, dir, [...plain, `replicaof 127.0.0.1 ${primary.port}`]);
  await until(async () => String(await redisCommand(replica.port, 'INFO', 'replication')).includes('master_link_status:up'), 15_000, 'the replica to sync');
  const sentinelConf = [
    `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 10000`,
    `sentinel parallel-syncs ${name} 1`,
  ];
  const sentinels = await Promise.all([0, 1, 2].map(() => startRedisProcess(t, dir, sentinelConf, { sentinel: true })));
  // Sentinels find each other (and the replica) through hello messages every 2 s.
  await until(
    async () => {
      for (const s of sentinels) {
        const info = (await redisCommand(s.port, 'SENTINEL', 'MASTER', name)) as string[];
        const field = (k: string): number => Number(info[info.indexOf(k) + 1]);
        if (field('num-other-sentinels') < 2 || field('num-slaves') < 1) return false;
      }
      return true;
    },
    20_000,
    'the sentinels to discover each other',
  );
  return {
    name,
    primary,
    replica,
    sentinels,
    async primaryPort() {
      const [, port] = (await redisCommand(sentinels[0]!.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[];
      return Number(port);
    },
  };
}

/** A three-node Redis Cluster (no replicas), every slot covered and the state ok on every node. */
export async function startRedisCluster(t: Teardown, dir: string): Promise<RedisProcess[]> {
  const nodes: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(await startRedisProcess(t, dir, ['save ""', 'appendonly no', 'cluster-enabled yes', `cluster-config-file nodes-${i}.conf`, 'cluster-node-timeout 5000']));
  }
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  await until(
    async () => {
      for (const n of nodes) if (!String(await redisCommand(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      return true;
    },
    20_000,
    'the cluster state to be ok',
  );
  return nodes;
}
