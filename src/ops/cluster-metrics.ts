// /metrics with `server.workers` > 1 (SPEC 7): every worker binds the same admin port, so a
// scrape lands on one worker at random. That worker asks the primary, which collects every
// worker's registry as JSON over the cluster IPC channel and sums them with prom-client's
// AggregatorRegistry; the worker answers with the result. Nothing here runs per proxied request.
import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';

const SCRAPE = 'authgate:metrics-scrape'; // worker -> primary: please aggregate
const COLLECT = 'authgate:metrics-collect'; // primary -> every worker: your registry
const PART = 'authgate:metrics-part'; // worker -> primary: my registry as JSON
const RESULT = 'authgate:metrics-result'; // primary -> the asking worker: the aggregate

/** A worker that does not answer within this is left out of that scrape (e.g. restarting). */
const COLLECT_TIMEOUT_MS = 3_000;
/** The worker gives up on the primary after this and answers 503. */
const SCRAPE_TIMEOUT_MS = COLLECT_TIMEOUT_MS + 2_000;

type MetricJson = Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>;
interface Message {
  type?: string;
  id?: number;
  text?: string;
  error?: string;
  metrics?: MetricJson;
}

let nextId = 0;
const pendingScrapes = new Map<number, (m: Message) => void>();
let workerListening = false;

/**
 * In a cluster worker: answer the primary's collect requests with the registry `current()`
 * returns (the live generation's, so a config reload is followed), and receive scrape results.
 */
export function serveWorkerMetrics(current: () => client.Registry): void {
  if (!cluster.isWorker || workerListening) return;
  workerListening = true;
  process.on('message', (m: Message | null) => {
    if (m?.type === RESULT && m.id !== undefined) {
      pendingScrapes.get(m.id)?.(m);
    } else if (m?.type === COLLECT && m.id !== undefined) {
      const id = m.id;
      current()
        .getMetricsAsJSON()
        .then(
          (metrics) => process.send?.({ type: PART, id, metrics }),
          (err: unknown) => process.send?.({ type: PART, id, error: String(err) }),
        );
    }
  });
}

/** True when /metrics must be answered for all workers together (this is a cluster worker). */
export function isClusterWorker(): boolean {
  return cluster.isWorker && typeof process.send === 'function' && workerListening;
}

/** In a worker: the aggregate of every worker's metrics, as Prometheus text (rejects on timeout). */
export function scrapeCluster(): Promise<string> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pendingScrapes.delete(id);
      reject(new Error('the cluster primary did not answer'));
    }, SCRAPE_TIMEOUT_MS);
    pendingScrapes.set(id, (m) => {
      clearTimeout(timer);
      pendingScrapes.delete(id);
      if (m.error !== undefined || m.text === undefined) reject(new Error(m.error ?? 'no metrics'));
      else resolve(m.text);
    });
    process.send?.({ type: SCRAPE, id });
  });
}

/** In the primary: answer workers' scrape requests by collecting from every live worker. */
export function aggregateWorkerMetrics(): void {
  let nextCollect = 0;
  const collecting = new Map<number, { parts: MetricJson[]; pending: Set<number>; finish: () => void }>();

  cluster.on('message', (worker: Worker, m: Message | null) => {
    if (m?.type === PART && m.id !== undefined) {
      const c = collecting.get(m.id);
      if (c === undefined || !c.pending.delete(worker.id)) return;
      if (m.metrics !== undefined) c.parts.push(m.metrics);
      if (c.pending.size === 0) c.finish();
      return;
    }
    if (m?.type !== SCRAPE || m.id === undefined) return;
    const asker = worker;
    const scrapeId = m.id;
    const id = nextCollect++;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
    const entry = {
      parts: [] as MetricJson[],
      pending: new Set(workers.map((w) => w.id)),
      finish: () => {
        clearTimeout(timer);
        collecting.delete(id);
        const reply: Message = { type: RESULT, id: scrapeId };
        client.AggregatorRegistry.aggregate(entry.parts)
          .metrics()
          .then(
            (text) => asker.isConnected() && asker.send({ ...reply, text }),
            (err: unknown) => asker.isConnected() && asker.send({ ...reply, error: String(err) }),
          );
      },
    };
    // A worker that is restarting or stuck is left out rather than failing the whole scrape.
    const timer = setTimeout(entry.finish, COLLECT_TIMEOUT_MS);
    collecting.set(id, entry);
    for (const w of workers) w.send({ type: COLLECT, id });
  });
}
