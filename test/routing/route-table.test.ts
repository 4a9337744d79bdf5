// The route table indexes many routes by the path's first segment: the route it finds must be
// the one a scan of every route in file order finds (SPEC 4 step 2: first match wins), for any
// routes, hosts, methods and paths.
import fc from 'fast-check';
import t from 'tap';
import type { RouteConfig } from '../../src/config/schema.js';
import { compileRoute, matchHost, matchPath, RouteTable, type CompiledRoute } from '../../src/routing/table.js';

/** The table's rule, route by route, in file order: the oracle. */
function scan(routes: readonly CompiledRoute<number>[], host: string, path: string, method: string): CompiledRoute<number> | undefined {
  return routes.find((r) => (r.methods === undefined || r.methods.has(method)) && matchPath(r.path, path) && (r.host === undefined || matchHost(r.host, host)));
}

const segment = fc.constantFrom('', 'api', 'API', 'v1', 'admin', 'a', 'b', 'app', 'static', 'x.y', 'api2');
const patternSegment = fc.oneof({ weight: 5, arbitrary: segment.filter((s) => s !== '') }, { weight: 1, arbitrary: fc.constant('*') });
const pattern = fc.tuple(fc.array(patternSegment, { maxLength: 3 }), fc.boolean()).map(([segs, rest]) => {
  const parts = rest ? [...segs, '**'] : segs;
  return parts.length === 0 ? (rest ? '/**' : '/') : `/${parts.join('/')}`;
});
const routeConfig = fc.record({
  path: pattern,
  host: fc.option(fc.constantFrom('a.example', '*.example', 'b.example:8080'), { nil: undefined }),
  methods: fc.option(fc.subarray(['GET', 'POST', 'DELETE']), { nil: undefined }),
});
const request = fc.record({
  path: fc.array(segment, { maxLength: 4 }).map((segs) => `/${segs.join('/')}`),
  host: fc.constantFrom('a.example', 'x.a.example', 'b.example:8080', 'b.example', 'other'),
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
});

function table(configs: { path: string; host: string | undefined; methods: string[] | undefined }[]): RouteTable<number> {
  return new RouteTable(configs.map((c, i) => compileRoute<number>({ name: `r${i}`, match: { path: c.path, ...(c.host ? { host: c.host } : {}), ...(c.methods ? { methods: c.methods } : {}) }, upstream: 'http://127.0.0.1:1', auth: 'anonymous' } as RouteConfig, i)));
}

t.test('few routes or many, the first match is the one a scan in file order finds', async (t) => {
  fc.assert(
    fc.property(fc.array(routeConfig, { minLength: 1, maxLength: 80 }), fc.array(request, { minLength: 1, maxLength: 30 }), (configs, requests) => {
      const tb = table(configs);
      for (const q of requests) {
        const got = tb.match(q.host, q.path, q.method);
        const want = scan(tb.routes, q.host, q.path, q.method);
        if (got !== want) throw new Error(`${q.method} ${q.host}${q.path}: ${got?.name ?? 'none'} instead of ${want?.name ?? 'none'}`);
      }
    }),
    { numRuns: 400 },
  );
  t.pass('400 route sets');
});

t.test('a later route with a literal first segment never wins over an earlier wildcard one', async (t) => {
  const configs = [
    ...Array.from({ length: 30 }, (_, i) => ({ path: `/svc${i}/**`, host: undefined, methods: undefined })),
    { path: '/*/health', host: undefined, methods: undefined },
    { path: '/svc3/health', host: undefined, methods: undefined },
    { path: '/**', host: undefined, methods: ['POST'] },
  ];
  const tb = table(configs);
  t.equal(tb.match('h', '/svc3/health', 'GET')?.name, 'r3', 'the earlier /svc3/** route');
  t.equal(tb.match('h', '/zzz/health', 'GET')?.name, 'r30', 'a first segment no route names: the wildcard route');
  t.equal(tb.match('h', '/zzz/other', 'POST')?.name, 'r32');
  t.equal(tb.match('h', '/zzz/other', 'GET'), undefined);
  t.equal(tb.match('h', '/', 'POST')?.name, 'r32', 'the root');
});
