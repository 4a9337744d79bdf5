// The request-path metrics keep their counts in plain cells (src/ops/metrics.ts); what /metrics
// shows must be exactly what prom-client's own Counter and Histogram show for the same events.
import t from 'tap';
import client from 'prom-client';
import { CellCounter, CellHistogram } from '../../src/ops/metrics.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

t.test('CellHistogram prints what a prom-client Histogram prints for the same observations', async (t) => {
  const ours = new client.Registry();
  const theirs = new client.Registry();
  const h = new CellHistogram(ours, 'x_latency_seconds', 'help text', 'route', BUCKETS);
  const ref = new client.Histogram({ name: 'x_latency_seconds', help: 'help text', labelNames: ['route'], buckets: BUCKETS, registers: [theirs] });
  const values = [0, 0.001, 0.0011, 0.003, 0.02, 0.7, 1, 29.9, 30, 31, 1e6];
  for (const [i, v] of values.entries()) {
    const route = i % 3 === 0 ? 'api' : i % 3 === 1 ? 'web' : 'a"b\\c';
    h.observe(route, v);
    ref.observe({ route }, v);
  }
  t.equal(await ours.metrics(), await theirs.metrics());
  // The JSON the worker aggregation reads: the same series and values.
  const series = async (r: client.Registry): Promise<string[]> =>
    (await r.getMetricsAsJSON()).flatMap((m) => m.values.map((v) => `${String((v as { metricName?: string }).metricName)} ${JSON.stringify(v.labels)} ${v.value}`));
  t.same(await series(ours), await series(theirs));
  ours.resetMetrics();
  t.notMatch(await ours.metrics(), /route=/, 'reset empties it');
});

t.test('CellHistogram aggregates across workers like a prom-client Histogram', async (t) => {
  const a = new client.Registry();
  const b = new client.Registry();
  new CellHistogram(a, 'y_seconds', 'h', 'route', BUCKETS).observe('r', 0.002);
  new CellHistogram(b, 'y_seconds', 'h', 'route', BUCKETS).observe('r', 0.2);
  const merged = client.AggregatorRegistry.aggregate([await a.getMetricsAsJSON(), await b.getMetricsAsJSON()]);
  const text = await merged.metrics();
  t.match(text, /y_seconds_count\{route="r"\} 2/);
  t.match(text, /y_seconds_bucket\{le="0.0025",route="r"\} 1/);
  t.match(text, /y_seconds_bucket\{le="0.25",route="r"\} 2/);
});

t.test('CellCounter counts by positional labels, bounded', async (t) => {
  const reg = new client.Registry();
  const c = new CellCounter(reg, 'z_total', 'h', ['route', 'method', 'status']);
  c.inc('api', 'GET', '200');
  c.inc('api', 'GET', '200');
  c.inc('api', 'POST', '200');
  c.inc('api'); // missing labels: not counted
  t.equal(c.get('api', 'GET', '200'), 2);
  t.equal(c.get('api', 'POST', '200'), 1);
  t.equal(c.get('api', 'GET', '404'), 0);
  const text = await reg.metrics();
  t.match(text, /z_total\{route="api",method="GET",status="200"\} 2/);
  t.match(text, /z_total\{route="api",method="POST",status="200"\} 1/);
  for (let i = 0; i < 20_000; i++) c.inc('flood', String(i), '200');
  const lines = (await reg.metrics()).split('\n').filter((l) => l.startsWith('z_total{'));
  t.equal(lines.length, 10_000, 'at most 10,000 label sets');
});
