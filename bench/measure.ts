// One load run: autocannon against a URL, with latencies kept at full (sub-millisecond) precision,
// and the target process's CPU time and RSS read from /proc before and after.
import autocannon from 'autocannon';
import { cpuMicros, rssBytes } from './procs.js';

export interface LoadSpec {
  url: string;
  /** Extra request headers (credentials). */
  headers?: Record<string, string>;
  method?: 'GET' | 'POST';
  connections: number;
  /** Seconds; ignored when `amount` is set. */
  duration?: number;
  /** Total requests to send (abuse runs). */
  amount?: number;
  /** Requests per second for the whole run (autocannon overallRate). */
  overallRate?: number;
  /** A request generator (different credentials per request). */
  setupRequest?: (req: autocannon.Request) => autocannon.Request;
  timeoutSeconds?: number;
}

export interface RunResult {
  /** 2xx responses per second over the run. */
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Latency of 2xx responses, milliseconds. */
  p50: number;
  p95: number;
  p99: number;
  durationS: number;
  /** CPU time of the measured process (and its descendants) in the run, microseconds. */
  cpuUs: number;
  /** CPU microseconds per 2xx response (per response when none is 2xx, e.g. abuse runs). */
  usPerReq: number;
  rssBytes: number;
  statusCodes: Record<string, number>;
}

/** Growable Float64 buffer of latencies (ms), for exact percentiles. */
class Latencies {
  private buf = new Float64Array(1 << 16);
  private n = 0;
  push(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }
  percentiles(ps: number[]): number[] {
    if (this.n === 0) return ps.map(() => Number.NaN);
    const sorted = this.buf.subarray(0, this.n).sort();
    return ps.map((p) => sorted[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))] as number);
  }
}

export async function runLoad(spec: LoadSpec, pid: number | undefined): Promise<RunResult> {
  const lat = new Latencies();
  let ok = 0;
  let other = 0;
  const opts: autocannon.Options = {
    url: spec.url,
    connections: spec.connections,
    method: spec.method ?? 'GET',
    headers: spec.headers ?? {},
    timeout: spec.timeoutSeconds ?? 10,
    // autocannon's own latency histogram has 1 ms resolution; ours is kept below (response event).
    ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.duration ?? 5 }),
    ...(spec.overallRate !== undefined ? { overallRate: spec.overallRate } : {}),
    ...(spec.setupRequest !== undefined ? { requests: [{ setupRequest: spec.setupRequest }] } : {}),
  };
  const cpuBefore = pid !== undefined ? cpuMicros(pid) : 0;
  const started = process.hrtime.bigint();
  // Without a callback autocannon returns its EventEmitter with a `then` (typed as a Promise only).
  const instance = autocannon(opts) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode >= 200 && statusCode < 300) {
      ok++;
      lat.push(responseTime);
    } else other++;
  });
  const result = await instance;
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuUs = pid !== undefined ? cpuMicros(pid) - cpuBefore : 0;
  const [p50, p95, p99] = lat.percentiles([50, 95, 99]) as [number, number, number];
  const durationS = result.duration > 0 ? result.duration : elapsedS;
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries((result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {})) statusCodes[code] = v.count;
  const denominator = ok > 0 ? ok : ok + other;
  return {
    rps: ok / durationS,
    ok,
    non2xx: other,
    errors: result.errors,
    timeouts: result.timeouts,
    p50,
    p95,
    p99,
    durationS,
    cpuUs,
    usPerReq: denominator > 0 ? cpuUs / denominator : Number.NaN,
    rssBytes: pid !== undefined ? rssBytes(pid) : 0,
    statusCodes,
  };
}

/** Median of a list (mean of the middle two for an even count). */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}
