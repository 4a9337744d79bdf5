// Prometheus metrics (SPEC 7), one registry per gateway so tests never clash. Counters on the
// request path are plain Map cells folded into prom-client when /metrics is scraped: prom-client
// hashes the label object on every increment, which cost ~1-2 µs per request.
import client from 'prom-client';

const MAX_LABEL_SETS = 10_000;

/** A counter incremented by positional label values, e.g. `requests.inc(route, method, status)`. */
export class CellCounter {
  readonly #cells = new Map<string, { values: readonly string[]; n: number }>();
  readonly #labelNames: readonly string[];

  constructor(registry: client.Registry, name: string, help: string, labelNames: readonly string[]) {
    this.#labelNames = labelNames;
    const cells = this.#cells;
    const names = labelNames;
    new client.Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      collect() {
        this.reset();
        for (const cell of cells.values()) {
          const labels: Record<string, string> = {};
          for (let i = 0; i < names.length; i++) labels[names[i] as string] = cell.values[i] as string;
          this.inc(labels, cell.n);
        }
      },
    });
  }

  inc(...values: string[]): void {
    const key = values.length === 1 ? (values[0] as string) : values.join('\u0000');
    const cell = this.#cells.get(key);
    if (cell !== undefined) cell.n++;
    // Label sets are bounded: a flood of new combinations cannot grow the process.
    else if (this.#cells.size < MAX_LABEL_SETS && values.length === this.#labelNames.length) this.#cells.set(key, { values, n: 1 });
  }

  /** Current count of one label set (tests). */
  get(...values: string[]): number {
    return this.#cells.get(values.length === 1 ? (values[0] as string) : values.join('\u0000'))?.n ?? 0;
  }
}

export class Metrics {
  readonly registry = new client.Registry();
  /** route, method, status */
  readonly requests: CellCounter;
  /** authenticator, result */
  readonly authOutcomes: CellCounter;
  /** cache, result (hit | miss | negative_hit) */
  readonly cache: CellCounter;
  readonly upstreamLatency: client.Histogram<'route'>;
  readonly storeLatency: client.Histogram<'op'>;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'authgate_' });
    const registers = [this.registry];
    this.requests = new CellCounter(this.registry, 'authgate_requests_total', 'Requests by route, method and status', ['route', 'method', 'status']);
    this.authOutcomes = new CellCounter(this.registry, 'authgate_auth_outcomes_total', 'Authentication outcomes by authenticator and result', ['authenticator', 'result']);
    this.cache = new CellCounter(this.registry, 'authgate_cache_total', 'Verification cache lookups by cache and result', ['cache', 'result']);
    this.upstreamLatency = new client.Histogram({
      name: 'authgate_upstream_latency_seconds',
      help: 'Time from forwarding a request to the upstream response headers',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.storeLatency = new client.Histogram({
      name: 'authgate_store_latency_seconds',
      help: 'State store call latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5],
      registers,
    });
  }
}
