// Wraps a store so every call is timed into authgate_store_latency_seconds (SPEC 7).
import type { Metrics } from '../ops/metrics.js';
import type { Store } from './types.js';

const TIMED = ['get', 'set', 'setIfAbsent', 'compareAndSet', 'take', 'delete', 'incr', 'ttl', 'indexAdd', 'indexRemove', 'indexMembers', 'publish', 'ping'] as const;

export function instrumentStore(store: Store, metrics: Metrics): Store {
  const wrapped: Record<string, unknown> = Object.create(store) as Record<string, unknown>;
  for (const op of TIMED) {
    const fn = (store[op] as (...args: unknown[]) => Promise<unknown>).bind(store);
    const timer = metrics.storeLatency.labels(op);
    wrapped[op] = async (...args: unknown[]) => {
      const start = performance.now();
      try {
        return await fn(...args);
      } finally {
        timer.observe((performance.now() - start) / 1000);
      }
    };
  }
  wrapped.subscribe = store.subscribe.bind(store);
  wrapped.close = store.close.bind(store);
  return wrapped as unknown as Store;
}
