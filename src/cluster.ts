// `server.workers`: several gateway processes behind one listener (node:cluster). The primary
// only supervises; each worker runs the whole gateway with its own in-process caches, which stay
// correct because every revocation is broadcast through the store (SQLite: an events table each
// process polls; Redis: pub/sub), so it reaches every worker within 1 s (SPEC 4, 8).
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type pino from 'pino';
import { loadConfig } from './config/load.js';
import type { ServerConfig } from './config/schema.js';
import { aggregateWorkerMetrics } from './ops/cluster-metrics.js';
import { createLogger } from './ops/logger.js';
import { durationMs } from './util/duration.js';

/** Worker crashes tolerated within CRASH_WINDOW_MS before the primary gives up. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 1_000;

/** `server.workers` as a count: default 1, `auto` = the CPUs this process may use. */
export function resolveWorkers(setting: ServerConfig['workers'], cpus: () => number = availableParallelism): number {
  if (setting === undefined) return 1;
  if (setting === 'auto') return Math.max(1, cpus());
  return Math.max(1, Math.floor(setting));
}

export interface ClusterPrimary {
  readonly workers: number;
  /** Stop every worker (each drains its requests), then resolve. */
  close(): Promise<void>;
}

/**
 * In a cluster worker: a logger whose lines say which worker wrote them; undefined elsewhere
 * (the gateway then makes its own logger, as without workers).
 */
export async function clusterWorkerLogger(configFile: string): Promise<pino.Logger | undefined> {
  if (!cluster.isWorker || cluster.worker === undefined) return undefined;
  const { config } = await loadConfig(configFile);
  return createLogger(config.server?.logLevel).child({ worker: cluster.worker.id });
}

const READY_MESSAGE = 'authgate:worker-ready';

/** In a cluster worker: tell the primary this worker serves (listening and gateway built). */
export function announceWorkerReady(): void {
  if (cluster.isWorker) process.send?.({ type: READY_MESSAGE });
}

/**
 * `authgate start` in the primary process: when the config asks for more than one worker, fork
 * them and supervise (restart a crashed worker, forward SIGHUP, drain all on SIGTERM/SIGINT).
 * Returns undefined when this process should serve requests itself (one worker, or it is a worker).
 */
export async function startClusterIfConfigured(configFile: string, opts: { logger?: pino.Logger; installSignalHandlers?: boolean } = {}): Promise<ClusterPrimary | undefined> {
  if (!cluster.isPrimary) return undefined;
  const { config } = await loadConfig(configFile);
  const count = resolveWorkers(config.server?.workers);
  if (count <= 1) return undefined;
  const log = (opts.logger ?? createLogger(config.server?.logLevel)).child({ role: 'primary' });
  const drainMs = durationMs(config.server?.drainTimeout, '10s');

  let closing = false;
  const crashes: number[] = [];
  const started = new Set<number>();
  let closed: Promise<void> | undefined;
  let resolveFailed: ((err: Error) => void) | undefined;
  const startupFailed = new Promise<never>((_, reject) => {
    resolveFailed = reject;
  });
  startupFailed.catch(() => undefined);

  // Workers run the same command line (and node flags) as this process.
  cluster.setupPrimary({ exec: process.argv[1], args: process.argv.slice(2), execArgv: process.execArgv });

  const readyListeners = new Set<() => void>();
  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (m: { type?: string } | null) => {
      if (m?.type !== READY_MESSAGE) return;
      started.add(w.id);
      for (const l of readyListeners) l();
    });
    return w;
  };

  cluster.on('exit', (worker, code, signal) => {
    if (closing) return;
    const everStarted = started.delete(worker.id);
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'gateway worker exited');
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && (crashes[0] as number) < now - CRASH_WINDOW_MS) crashes.shift();
    // A worker that never became ready will fail again the same way (bad port, bad config): stop.
    if (!everStarted || crashes.length >= MAX_CRASHES) {
      const reason = everStarted ? `${crashes.length} worker crashes within ${CRASH_WINDOW_MS / 1000} s` : 'a worker failed to start';
      log.fatal({ reason }, 'stopping the cluster');
      resolveFailed?.(new Error(`authgate cluster: ${reason}`));
      void close().then(() => process.exit(1));
      return;
    }
    const t = setTimeout(() => { if (!closing) fork(); }, RESTART_DELAY_MS);
    t.unref();
  });

  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              // Each worker drains for up to server.drainTimeout; past that (and a margin) it is killed.
              const kill = setTimeout(() => w.process.kill('SIGKILL'), drainMs + 5_000);
              w.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              w.process.kill('SIGTERM');
            }),
        ),
      );
      log.info('authgate cluster stopped');
    })();
    return closed;
  };

  const workersUp = new Promise<void>((resolve) => {
    const onReady = (): void => {
      if (started.size >= count) {
        readyListeners.delete(onReady);
        resolve();
      }
    };
    readyListeners.add(onReady);
  });
  aggregateWorkerMetrics();
  for (let i = 0; i < count; i++) fork();
  await Promise.race([workersUp, startupFailed]);
  log.info({ workers: count }, 'authgate cluster started');

  if (opts.installSignalHandlers !== false) {
    const stop = (signal: string): void => {
      log.info({ signal }, 'draining every worker');
      close().then(() => process.exit(0), () => process.exit(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
    });
  }
  return { workers: count, close };
}
