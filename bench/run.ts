// `npm run bench`: authgate against bare @fastify/http-proxy (and, with --peers, nginx and
// HAProxy) in one run on 127.0.0.1. Interleaved rounds (A B C … A B C …) after a warm-up; each
// server under test is its own child process pinned to core 0, the load generator and the
// upstream to core 1; CPU time per 2xx response is read from /proc beside requests/s.
// Flags: see USAGE below, or bench/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type autocannon from 'autocannon';
import { abuseKinds, runAbuse } from './abuse.js';
import { createFixtures, EXT_AUDIENCE, externalAccessToken, PREFIX, writeGatewayConfig, type BenchFixtures } from './fixtures.js';
import { runLoad, type RunResult } from './measure.js';
import { runPaced } from './paced.js';
import { peerAvailability, startHaproxy, startNginx, type Peer } from './peers.js';
import { CORE_GATEWAY, CORE_LOAD, cpuModel, HAS_PROC, HAS_TASKSET, pinSelf, spawnNode, type Child } from './procs.js';
import { summarizeHeapProfile, summarizeProfile } from './profile.js';
import { comparisons, machineLine, markdownTable, summarize, summarizeAlternation, svgChart, type Alternation, type AlternationWindow, type BenchReport, type VerifyResult } from './report.js';
import { buildScenarios, mainGatewayAuth, redisGatewayAuth, type Scenario, type TargetName } from './scenarios.js';
import { seedCredentials, type SeededCredentials } from './seed.js';
import { djangoGatewayAuth, startDjangoSite, type DjangoSite } from './django.js';

const USAGE = `npm run bench -- [options]
  --quick            short runs (2 s, 3 rounds), small abuse count; results go to bench/results/quick.*
  --duration S       seconds per measured run (default 8)
  --warmup S         seconds of warm-up per scenario before the rounds (default 2)
  --repeats N        interleaved rounds (default 3, at least 3 for the report)
  --connections N    autocannon connections (default 50)
  --only a,b         only these scenario ids (bare is always run)
  --peers            also nginx and HAProxy, when installed (nothing is installed)
  --no-verify        skip the forward-auth latency run
  --no-cold-jwt      skip the "new RS256 token on every request" scenario
  --abuse            memory under abuse: distinct invalid credentials of each kind
  --abuse-count N    credentials per kind (default 1,000,000; 20,000 with --quick)
  --profile          profile one more run of each scenario (V8 CPU profile of the
                     gateway or bare child) and print where the time goes
  --heap-profile     the same with V8's allocation sampling: bytes allocated per request, by
                     module and function (objects the scavenger collects included)
  --no-build         run the children from the TypeScript sources under tsx instead of compiling
                     them first with tsc (node_modules/.cache/authgate-bench); tsx adds per-request helper calls
  --out NAME         results file name under bench/results (default latest, or quick)`;

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    repeats: { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    peers: { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    'no-cold-jwt': { type: 'boolean', default: false },
    abuse: { type: 'boolean', default: false },
    'abuse-count': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'heap-profile': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const num = (v: string | undefined, d: number): number => {
  if (v === undefined) return d;
  const n = Number(v.replace(/[_,]/g, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${v}`);
  return n;
};
const quick = args.quick === true;
const opts = {
  duration: num(args.duration, quick ? 2 : 8),
  warmup: num(args.warmup, quick ? 1 : 2),
  repeats: Math.floor(num(args.repeats, 3)),
  connections: Math.floor(num(args.connections, 50)),
  verify: args['no-verify'] !== true,
  coldJwt: args['no-cold-jwt'] !== true,
  peers: args.peers === true,
  abuse: args.abuse === true,
  abuseCount: Math.floor(num(args['abuse-count'], quick ? 20_000 : 1_000_000)),
  profile: args.profile === true,
  heapProfile: args['heap-profile'] === true,
  build: args['no-build'] !== true,
  only: args.only ? new Set(['bare', ...args.only.split(',').map((s) => s.trim())]) : undefined,
  out: args.out ?? (quick ? 'quick' : 'latest'),
};

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const children: { stop(): Promise<void> }[] = [];
let fx: BenchFixtures | undefined;
let djangoSite: DjangoSite | undefined;

async function cleanup(): Promise<void> {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  await djangoSite?.drop().catch(() => undefined);
  await fx?.aux.close().catch(() => undefined);
  if (fx) {
    await deleteRedisKeys(fx.redisPrefix).catch(() => undefined);
    rmSync(fx.dir, { recursive: true, force: true });
  }
}

async function redisReachable(): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const r = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return true;
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0', { maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

async function availableTypes(): Promise<Set<string>> {
  const { AUTHENTICATOR_FACTORIES } = await import('../src/pipeline/registry.js');
  return new Set(Object.keys(AUTHENTICATOR_FACTORIES));
}

function gitCommit(): string {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).stdout.trim() !== '';
  return `${rev || 'unknown'}${dirty ? ' (+ uncommitted src changes)' : ''}`;
}

/**
 * Compiles src and the child scripts with tsc (bench/tsconfig.json), so the measured processes
 * run plain JS as `npm start` does after `prepare` (tsx would add a loader and a helper call per
 * closure). Type errors elsewhere in the tree do not stop the emit; they are only noted.
 */
function build(notes: string[]): (name: string) => string {
  if (!opts.build) return (name) => join(here, `${name}.ts`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(here, 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
  const out = join(root, 'node_modules', '.cache', 'authgate-bench', 'bench');
  if (r.status !== 0) {
    if (!existsSync(join(out, 'gateway-child.js'))) throw new Error(`tsc emitted nothing:\n${r.stdout}${r.stderr}`);
    notes.push('build: tsc reported type errors elsewhere in the tree; the emitted JS was used');
  }
  log(`build: tsc -p bench/tsconfig.json in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return (name) => join(out, `${name}.js`);
}
let script: (name: string) => string = (name) => join(here, `${name}.ts`);

async function startGatewayChild(name: string, configFile: string): Promise<Child> {
  // AUTHGATE_BENCH_NODE_FLAGS (e.g. "--trace-gc"): extra node flags for the gateway children,
  // whose stdout is then shown (V8 traces go there).
  const extra = process.env.AUTHGATE_BENCH_NODE_FLAGS?.split(' ').filter((f) => f !== '') ?? [];
  return spawnNode(script('gateway-child'), [configFile, 'warn'], { name, core: CORE_GATEWAY, nodeFlags: ['--expose-gc', ...extra], stdout: extra.length > 0 ? 'inherit' : 'ignore' });
}

/** One request per scenario before measuring: a scenario that does not answer 2xx is dropped. */
async function sanityCheck(s: Scenario, base: string): Promise<string | undefined> {
  const headers = { ...s.headers, ...(s.rotating ? s.rotating() : {}) };
  try {
    const res = await fetch(base + s.path, { headers, signal: AbortSignal.timeout(10_000) });
    const body = await res.text();
    if (res.status >= 200 && res.status < 300) return undefined;
    return `HTTP ${res.status}: ${body.slice(0, 200)}`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

function coldJwtPool(fxs: BenchFixtures, n: number): string[] {
  const pool: string[] = [];
  for (let i = 0; i < n; i++) pool.push(externalAccessToken(fxs, 7200, { sub: `ext-user-${i}` }));
  return pool;
}

async function main(): Promise<void> {
  const started = Date.now();
  const pinnedSelf = pinSelf(CORE_LOAD);
  log(`authgate bench: ${cpuModel()}, ${cpus().length} cores; taskset ${HAS_TASKSET ? (pinnedSelf ? 'yes' : 'failed') : 'absent'}; /proc ${HAS_PROC ? 'yes' : 'absent (no CPU figures)'}`);
  log(`options: ${JSON.stringify({ ...opts, only: opts.only ? [...opts.only] : undefined })}`);
  const notes: string[] = [];
  script = build(notes);
  fx = await createFixtures();
  const types = await availableTypes();

  const upstream = await spawnNode(script('upstream'), [], { name: 'upstream', core: CORE_LOAD });
  children.push(upstream);
  const upstreamUrl = upstream.ready.url as string;
  const bare = await spawnNode(script('bare-proxy'), [upstreamUrl], { name: 'bare', core: CORE_GATEWAY });
  children.push(bare);
  const floor = await spawnNode(script('node-floor'), [upstreamUrl, fx.extPublicKeyFile, fx.aux.issuer, EXT_AUDIENCE], { name: 'floor', core: CORE_GATEWAY });
  children.push(floor);

  const main = mainGatewayAuth(fx, types);
  const mainConfig = writeGatewayConfig(fx, { name: 'gateway', store: 'sqlite', upstream: upstreamUrl, ...main });
  const gateway = await startGatewayChild('gateway', mainConfig);
  children.push(gateway);
  const gatewayUrl = gateway.ready.url as string;

  // The same gateway with server.workers: 2 (throughput scaling, issue 12), only for the JWT route.
  let gatewayW2: Child | undefined;
  if (types.has('jwt') && (opts.only === undefined || opts.only.has('jwt-rs256-w2'))) {
    const w2Config = writeGatewayConfig(fx, { name: 'gateway-w2', store: 'sqlite', upstream: upstreamUrl, workers: 2, ...main });
    gatewayW2 = await startGatewayChild('gateway-w2', w2Config);
    children.push(gatewayW2);
  }

  let redisGw: Child | undefined;
  let redisCreds: SeededCredentials | undefined;
  if (types.has('session') && (await redisReachable())) {
    const redisConfig = writeGatewayConfig(fx, { name: 'gateway-redis', store: 'redis', upstream: upstreamUrl, ...redisGatewayAuth() });
    redisGw = await startGatewayChild('gateway-redis', redisConfig);
    children.push(redisGw);
    redisCreds = await seedCredentials(redisConfig, redisGw.ready.url as string, fx.user, { session: true, token: false, selfJwt: false });
  }
  let djangoGw: Child | undefined;
  const djangoIds = ['django-session', 'django-token', 'django-jwt'];
  if (types.has('django-session') && (opts.only === undefined || djangoIds.some((id) => opts.only?.has(id)))) {
    const site = await startDjangoSite();
    if (typeof site === 'string') notes.push(`django-session, django-token, django-jwt: skipped, ${site}`);
    else {
      djangoSite = site;
      const { extra, ...auth } = djangoGatewayAuth(site);
      djangoGw = await startGatewayChild('gateway-django', writeGatewayConfig(fx, { name: 'gateway-django', store: 'memory', upstream: upstreamUrl, ...auth, extra }));
      children.push(djangoGw);
    }
  }
  const mainCreds = await seedCredentials(mainConfig, gatewayUrl, fx.user, { session: types.has('session'), token: types.has('token'), selfJwt: types.has('jwt') });
  notes.push(`credentials: ${Object.entries(mainCreds.how).map(([k, v]) => `${k} via ${v === 'endpoint' ? 'its endpoint' : 'the gateway service (endpoint not available)'}`).join(', ')}`);

  const avail = peerAvailability();
  const peers = new Map<TargetName, Peer>();
  if (opts.peers) {
    if (avail.nginx) {
      try {
        const p = await startNginx(avail.nginx, fx, upstreamUrl, CORE_GATEWAY);
        peers.set('nginx', p);
        children.push(p);
      } catch (err) {
        notes.push(`nginx: could not start (${err instanceof Error ? err.message : String(err)})`);
      }
    } else notes.push('nginx: not installed, skipped (the bench installs nothing)');
    if (avail.haproxy) {
      try {
        const p = await startHaproxy(avail.haproxy, fx, upstreamUrl, CORE_GATEWAY);
        peers.set('haproxy', p);
        children.push(p);
      } catch (err) {
        notes.push(`haproxy: could not start (${err instanceof Error ? err.message : String(err)})`);
      }
    } else notes.push('haproxy: not installed, skipped (the bench installs nothing)');
  }

  const wantCold = opts.coldJwt && types.has('jwt') && (opts.only === undefined || opts.only.has('jwt-rs256-cold'));
  // More distinct tokens than the verifier's cache holds (10,000), so every request verifies.
  const pool = wantCold ? coldJwtPool(fx, 12_000) : undefined;
  const built = buildScenarios({ fx, types, main: mainCreds, redis: redisCreds, peers: { nginx: peers.has('nginx'), haproxy: peers.has('haproxy') }, coldJwt: wantCold, coldJwtPool: pool, django: djangoSite, workers2: gatewayW2 !== undefined });
  notes.push(...built.notes);
  let scenarios = built.scenarios;
  if (opts.only) scenarios = scenarios.filter((s) => opts.only?.has(s.id));

  const targets: Record<TargetName, { url: string; pid: number } | undefined> = {
    bare: { url: bare.ready.url as string, pid: bare.pid },
    floor: { url: floor.ready.url as string, pid: floor.pid },
    gateway: { url: gatewayUrl, pid: gateway.pid },
    'gateway-w2': gatewayW2 ? { url: gatewayW2.ready.url as string, pid: gatewayW2.pid } : undefined,
    'gateway-redis': redisGw ? { url: redisGw.ready.url as string, pid: redisGw.pid } : undefined,
    'gateway-django': djangoGw ? { url: djangoGw.ready.url as string, pid: djangoGw.pid } : undefined,
    nginx: peers.get('nginx'),
    haproxy: peers.get('haproxy'),
  };
  const checked: Scenario[] = [];
  for (const s of scenarios) {
    const t = targets[s.target];
    if (!t) continue;
    const problem = await sanityCheck(s, t.url);
    if (problem) {
      notes.push(`${s.id}: dropped, the check request failed (${problem})`);
      log(`! ${s.id}: ${problem}`);
    } else checked.push(s);
  }
  scenarios = checked;
  if (!scenarios.some((s) => s.id === 'bare')) throw new Error('the bare proxy does not answer; nothing to compare with');

  const runOne = async (s: Scenario, seconds: number): Promise<RunResult> => {
    const t = targets[s.target] as { url: string; pid: number };
    if (s.level) await gateway.send({ cmd: 'level', level: s.level });
    try {
      return await runLoad(
        {
          url: t.url + s.path,
          headers: s.headers,
          connections: s.connections ?? opts.connections,
          duration: Math.max(seconds, s.minDuration ?? 0),
          ...(s.rotating ? { setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...(req.headers ?? {}), ...(s.rotating as () => Record<string, string>)() } }) } : {}),
          // nginx's bcrypt check takes tens of ms per request on one worker.
          timeoutSeconds: s.target === 'nginx' ? 30 : 10,
        },
        t.pid,
      );
    } finally {
      if (s.level) await gateway.send({ cmd: 'level', level: 'warn' });
    }
  };

  const perRun = opts.duration + 0.6;
  const eta = scenarios.length * (opts.warmup + 0.3) + scenarios.length * opts.repeats * perRun + (opts.verify ? (quick ? 3 : 10) : 0);
  log(`${scenarios.length} scenarios × ${opts.repeats} rounds of ${opts.duration} s (+ warm-up ${opts.warmup} s each): about ${Math.ceil(eta / 60)} min${opts.abuse ? ', plus the abuse runs' : ''}`);

  for (const s of scenarios) await runOne(s, opts.warmup);
  const introCallsBefore = fx.aux.introspectionCalls();
  const runs = new Map<string, RunResult[]>();
  for (let round = 1; round <= opts.repeats; round++) {
    for (const s of scenarios) {
      const r = await runOne(s, opts.duration);
      runs.set(s.id, [...(runs.get(s.id) ?? []), r]);
      log(`round ${round}/${opts.repeats}  ${s.id.padEnd(20)} ${Math.round(r.rps).toString().padStart(6)} req/s  ${r.usPerReq.toFixed(1).padStart(7)} µs/req  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms${r.non2xx || r.errors || r.timeouts ? `  non-2xx ${r.non2xx} errors ${r.errors} timeouts ${r.timeouts}` : ''}`);
    }
  }
  const introCalls = fx.aux.introspectionCalls() - introCallsBefore;
  if (scenarios.some((s) => s.id === 'introspection')) notes.push(`introspection: ${introCalls} calls to the introspection endpoint during the measured rounds (warm cache)`);

  let verify: VerifyResult | undefined;
  if (opts.verify && (mainCreds.selfJwt || types.has('jwt'))) {
    const self = mainCreds.selfJwt !== undefined;
    const jwt = mainCreds.selfJwt ?? externalAccessToken(fx);
    const routePath = self ? '/jwt-self/x' : '/jwt-rs256/x';
    const host = new URL(gatewayUrl).host;
    const rate = 1000;
    const seconds = quick ? 3 : 10;
    const headers = { authorization: `Bearer ${jwt}`, 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-forwarded-uri': routePath };
    const check = await fetch(`${gatewayUrl}${PREFIX}/verify`, { headers });
    await check.arrayBuffer();
    if (check.status !== 200) notes.push(`verify: skipped, ${PREFIX}/verify answered ${check.status}`);
    else {
      const url = `${gatewayUrl}${PREFIX}/verify`;
      await runPaced({ url, headers, rate, seconds: 1 });
      const paced = await runPaced({ url, headers, rate, seconds });
      // The same paced load on the upstream itself: the floor of this generator and machine.
      const floor = await runPaced({ url: `${upstreamUrl}/floor`, headers: {}, rate, seconds });
      log(`verify floor (paced, straight to the upstream): p50 ${floor.p50.toFixed(3)} ms, p95 ${floor.p95.toFixed(3)} ms, p99 ${floor.p99.toFixed(3)} ms, max ${floor.max.toFixed(1)} ms, ${floor.slowBursts.length} bursts over 1 ms`);
      const r = await runLoad({ url, headers, connections: 10, duration: seconds, overallRate: rate }, gateway.pid);
      verify = {
        rate,
        durationS: seconds,
        credential: self ? 'gateway-issued JWT' : 'RS256 JWT via JWKS',
        paced,
        autocannon: { p50: r.p50, p95: r.p95, p99: r.p99, ok: r.ok, non2xx: r.non2xx },
        floor: { p50: floor.p50, p95: floor.p95, p99: floor.p99, max: floor.max },
        verdict: paced.p99 < 1 && paced.ok === paced.sent ? 'ok' : 'miss',
      };
      log(`verify, paced ${rate} req/s for ${seconds} s: p50 ${paced.p50.toFixed(3)} ms, p95 ${paced.p95.toFixed(3)} ms, p99 ${paced.p99.toFixed(3)} ms, max ${paced.max.toFixed(1)} ms (${paced.ok} ok, ${paced.other} other, ${paced.errors} errors; generator late p99 ${paced.lateP99.toFixed(2)} ms)`);
      log(`  requests over 1 ms came in ${paced.slowBursts.length} bursts: ${paced.slowBursts.slice(0, 12).map((b) => `${b.atS.toFixed(2)}s×${b.count} (max ${b.maxMs.toFixed(1)} ms)`).join(', ')}`);
      log(`verify, autocannon overallRate ${rate}: p50 ${r.p50.toFixed(3)} ms, p95 ${r.p95.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms (${r.ok} ok, ${r.non2xx} other)`);
    }
  }

  // Two ways of serving compared within one load on one process, switched every 250 ms: separate
  // runs of a few seconds each drift by more than the differences measured here on these VMs.
  const alternated = async (s: Scenario, states: [string, string], floor?: { upstream: string; jwt?: { keyFile: string; issuer: string; audience: string } }): Promise<Alternation | undefined> => {
    const seconds = quick ? 8 : 24;
    const ms = 250;
    const windows = Math.floor(((seconds - 1) * 1000) / ms / 2) * 2;
    const load = runLoad({ url: gatewayUrl + s.path, headers: s.headers, connections: opts.connections, duration: seconds }, undefined);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const reply = (await gateway.send({ cmd: 'alternate', states, ms, windows, upstream: floor?.upstream, jwt: floor?.jwt })) as { windows?: AlternationWindow[] };
    await load;
    return reply.windows ? summarizeAlternation(s.id, states, ms, reply.windows) : undefined;
  };
  const describe = (a: Alternation): string =>
    `${a.states[1]} ${a.bUsPerReq.toFixed(1)} µs/req, ${a.states[0]} ${a.aUsPerReq.toFixed(1)} µs/req, difference ${a.difference >= 0 ? '+' : ''}${a.difference.toFixed(1)} µs; median of ${a.pairs} paired windows ${a.medianPairDifference >= 0 ? '+' : ''}${a.medianPairDifference.toFixed(2)} µs (quartiles ${a.pairQ1.toFixed(2)}, ${a.pairQ3.toFixed(2)})`;

  // Log level info against warn on the RS256 route; then warn against warn on the same route, the
  // method's own resolution (what two identical halves differ by).
  let infoAlternating: Alternation | undefined;
  let sameAlternating: Alternation | undefined;
  const infoScenario = scenarios.find((s) => s.level === 'info');
  const infoOf = infoScenario ? scenarios.find((s) => s.id === infoScenario.id.replace(/@info$/, '')) : undefined;
  if (infoOf) {
    infoAlternating = await alternated(infoOf, ['warn', 'info']);
    if (infoAlternating) log(`log level info vs warn on ${infoOf.id}, alternated every ${infoAlternating.windowMs} ms (${infoAlternating.windows} windows): ${describe(infoAlternating)}`);
    sameAlternating = await alternated(infoOf, ['warn', 'warn']);
    if (sameAlternating) log(`control, warn vs warn on ${infoOf.id}, alternated the same way: ${describe(sameAlternating)}`);
  }
  // The anonymous route against the Node floor's handler in the gateway's own process.
  let floorAlternating: Alternation | undefined;
  const anonymous = scenarios.find((s) => s.id === 'anonymous');
  if (anonymous) {
    floorAlternating = await alternated(anonymous, ['floor', 'gateway'], { upstream: upstreamUrl });
    if (floorAlternating) log(`anonymous vs the Node floor's handler in the gateway process, alternated every ${floorAlternating.windowMs} ms: ${describe(floorAlternating)} (${(floorAlternating.bUsPerReq / floorAlternating.aUsPerReq).toFixed(3)}x)`);
  }
  // The RS256 route against the floor's handler with the same cached check, the same way.
  let floorJwtAlternating: Alternation | undefined;
  const rs256 = scenarios.find((s) => s.id === 'jwt-rs256');
  if (rs256) {
    floorJwtAlternating = await alternated(rs256, ['floor', 'gateway'], { upstream: upstreamUrl, jwt: { keyFile: fx.extPublicKeyFile, issuer: fx.aux.issuer, audience: EXT_AUDIENCE } });
    if (floorJwtAlternating) log(`jwt-rs256 vs the Node floor's handler with the same cached RS256 check, in the gateway process: ${describe(floorJwtAlternating)} (${(floorJwtAlternating.bUsPerReq / floorJwtAlternating.aUsPerReq).toFixed(3)}x)`);
  }

  let abuse;
  if (opts.abuse) abuse = await runAbuse(gateway, gatewayUrl, abuseKinds(fx, types), opts.abuseCount, opts.connections, log);

  const summaries = summarize(scenarios, runs);
  const info = summaries.find((s) => s.id.endsWith('@info'));
  const infoBase = info ? summaries.find((s) => s.id === info.id.replace(/@info$/, '')) : undefined;
  const report: BenchReport = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    machine: { cpu: cpuModel(), nproc: cpus().length, node: process.version, os: `${process.platform} ${release()}`, pinned: pinnedSelf, memGB: totalmem() / 2 ** 30 },
    options: { ...opts, only: opts.only ? [...opts.only] : undefined, freeMemGB: Math.round(freemem() / 2 ** 30), gatewayLogLevel: 'warn', runtime: opts.build ? 'compiled JS (tsc)' : 'tsx' },
    peers: Object.fromEntries([...peers.entries()].map(([k, p]) => [k, p.version])),
    notes,
    scenarios: summaries,
    comparisons: comparisons(summaries, { info: infoAlternating, same: sameAlternating, floor: floorAlternating, floorJwt: floorJwtAlternating }),
    verify,
    abuse,
    alternations: { info: infoAlternating, same: sameAlternating, floor: floorAlternating, floorJwt: floorJwtAlternating },
    infoLevel: info && infoBase ? { id: infoBase.id, rps: info.rps, usPerReq: info.usPerReq, warnRps: infoBase.rps, warnUsPerReq: infoBase.usPerReq } : undefined,
  };

  for (const kind of [opts.profile ? 'cpu' : undefined, opts.heapProfile ? 'heap' : undefined]) {
    if (kind === undefined) continue;
    // One profile per gateway scenario, of one more run of it (after the measured rounds).
    const sections: string[] = [];
    const profiled: Partial<Record<TargetName, Child>> = { bare, floor, gateway, 'gateway-redis': redisGw, 'gateway-django': djangoGw };
    const ext = kind === 'cpu' ? 'cpuprofile' : 'heapprofile';
    for (const s of scenarios) {
      const child = profiled[s.target];
      if (!child) continue;
      const file = join(here, 'results', `${opts.out}-${s.id.replace(/[^a-z0-9-]/gi, '_')}.${ext}`);
      await child.send({ cmd: 'profile-start', kind });
      const r = await runOne(s, opts.duration);
      await child.send({ cmd: 'profile-stop', file });
      writeFileSync(`${file}.json`, JSON.stringify({ id: s.id, ok: r.ok, rps: r.rps, usPerReq: r.usPerReq }));
      const summary = kind === 'cpu' ? summarizeProfile(file, 40) : summarizeHeapProfile(file, Math.max(1, r.ok), 40);
      sections.push(`=== ${s.id}: ${Math.round(r.rps)} req/s, ${r.usPerReq.toFixed(1)} µs/req (under the profiler) ===\n${summary}`);
    }
    const out = join(here, 'results', `${opts.out}-${kind === 'cpu' ? 'profile' : 'heap-profile'}.txt`);
    writeFileSync(out, `${sections.join('\n\n')}\n`);
    log(`profiles: bench/results/${opts.out}-*.${ext}; summary: ${out}`);
  }

  const resultsDir = join(here, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const json = { ...report, scenarios: report.scenarios.map((s) => ({ ...s, runs: s.runs.map((r) => ({ ...r, rssMB: r.rssBytes / 2 ** 20 })) })) };
  writeFileSync(join(resultsDir, `${opts.out}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(resultsDir, `${opts.out}.svg`), svgChart(report));
  const md = `Machine: ${machineLine(report)}\n\n${markdownTable(report)}${notes.length > 0 ? `\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
  writeFileSync(join(resultsDir, `${opts.out}.md`), md);
  console.log(`\n${md}`);
  log(`results: bench/results/${opts.out}.{json,svg,md}; ${Math.round((Date.now() - started) / 1000)} s in all`);
}

process.on('SIGINT', () => void cleanup().finally(() => process.exit(130)));
main()
  .then(cleanup, async (err: unknown) => {
    console.error(err instanceof Error ? err.stack : String(err));
    await cleanup();
    process.exitCode = 1;
  });
