// Prometheus metrics (SPEC 7), one registry per process so tests never clash.
import client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'route' | 'method' | 'status'>;
  readonly authOutcomes: client.Counter<'authenticator' | 'result'>;
  readonly upstreamLatency: client.Histogram<'route'>;
  readonly cache: client.Counter<'cache' | 'result'>;
  readonly storeLatency: client.Histogram<'op'>;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'authgate_' });
    const registers = [this.registry];
    this.requests = new client.Counter({ name: 'authgate_requests_total', help: 'Requests by route, method and status', labelNames: ['route', 'method', 'status'], registers });
    this.authOutcomes = new client.Counter({ name: 'authgate_auth_outcomes_total', help: 'Authentication outcomes by authenticator and result', labelNames: ['authenticator', 'result'], registers });
    this.upstreamLatency = new client.Histogram({
      name: 'authgate_upstream_latency_seconds',
      help: 'Time from forwarding a request to the upstream response headers',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.cache = new client.Counter({ name: 'authgate_cache_total', help: 'Verification cache lookups by cache and result', labelNames: ['cache', 'result'], registers });
    this.storeLatency = new client.Histogram({
      name: 'authgate_store_latency_seconds',
      help: 'State store call latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5],
      registers,
    });
  }
}
