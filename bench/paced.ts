// An open-loop load at a truly fixed rate: one request every 1/rate seconds, whatever the answers
// do. autocannon's overallRate is not that: each connection sends its per-second quota back to
// back and then waits for the next second, so "1,000 req/s" is a burst at full speed followed by
// idle time, and its latencies are those of the burst. Used for the forward-auth latency figure.
import { Pool } from 'undici';

export interface PacedResult {
  sent: number;
  ok: number;
  other: number;
  errors: number;
  /** Milliseconds from sending a request to the end of its response. */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** How late the generator itself was sending, p99 (ms): large values mean it could not keep up. */
  lateP99: number;
  /** Requests over 1 ms: when they were sent (s into the run) and how long they took, grouped into bursts. */
  slowBursts: { atS: number; count: number; maxMs: number }[];
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export async function runPaced(opts: { url: string; headers: Record<string, string>; rate: number; seconds: number; connections?: number }): Promise<PacedResult> {
  const u = new URL(opts.url);
  const pool = new Pool(u.origin, { connections: opts.connections ?? 16, pipelining: 1, keepAliveTimeout: 30_000 });
  const total = Math.round(opts.rate * opts.seconds);
  const latencies = new Float64Array(total);
  const late = new Float64Array(total);
  let ok = 0;
  let other = 0;
  let errors = 0;
  const path = u.pathname + u.search;
  const intervalNs = 1e9 / opts.rate;
  const start = process.hrtime.bigint();
  let next = 0;
  const inflight: Promise<void>[] = [];

  const fire = (i: number, scheduledNs: number): void => {
    const sentAt = process.hrtime.bigint();
    late[i] = (Number(sentAt - start) - scheduledNs) / 1e6;
    const p = pool
      .request({ path, method: 'GET', headers: opts.headers })
      .then(async (res) => {
        await res.body.dump();
        latencies[i] = Number(process.hrtime.bigint() - sentAt) / 1e6;
        if (res.statusCode >= 200 && res.statusCode < 300) ok++;
        else other++;
      })
      .catch(() => {
        latencies[i] = Number.NaN;
        errors++;
      });
    inflight.push(p);
  };

  // Send every request whose time has come, then yield to the event loop (responses) and repeat.
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = Number(process.hrtime.bigint() - start);
      while (next < total && next * intervalNs <= elapsed) {
        fire(next, next * intervalNs);
        next++;
      }
      if (next >= total) return resolve();
      setImmediate(tick);
    };
    tick();
  });
  await Promise.all(inflight);
  await pool.close();
  // Slow requests close together (within 20 ms) are one event: a pause, not a steady cost.
  const slowBursts: { atS: number; count: number; maxMs: number }[] = [];
  for (let i = 0; i < total; i++) {
    const v = latencies[i] as number;
    if (!(v > 1)) continue;
    const atS = (i * intervalNs) / 1e9;
    const last = slowBursts[slowBursts.length - 1];
    if (last && atS - last.atS < 0.02 + last.count / opts.rate) {
      last.count++;
      last.maxMs = Math.max(last.maxMs, v);
    } else slowBursts.push({ atS, count: 1, maxMs: v });
  }
  const measured = latencies.filter((v) => Number.isFinite(v)).sort();
  const lateSorted = late.slice(0, total).sort();
  return {
    sent: total,
    ok,
    other,
    errors,
    p50: percentile(measured, 50),
    p95: percentile(measured, 95),
    p99: percentile(measured, 99),
    max: measured.length > 0 ? (measured[measured.length - 1] as number) : Number.NaN,
    lateP99: percentile(lateSorted, 99),
    slowBursts,
  };
}
