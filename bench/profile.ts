// Summarises a V8 .cpuprofile (from `node --cpu-prof` on the gateway child): self time by
// function and by module, so the hot path's costs can be read without a browser.
// Usage: node --import tsx bench/profile.ts FILE.cpuprofile [TOP]
//        node --import tsx bench/profile.ts FILE.heapprofile [TOP]
//        node --import tsx bench/profile.ts --diff BASE.cpuprofile OTHER.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** node_modules/<pkg>, src/<file>, node:<module>, or a V8 pseudo-frame like (garbage collector). */
export function moduleOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  // The bench's compiled copy of the tree (bench/tsconfig.json) reads as the sources.
  const built = url.indexOf('/.cache/authgate-bench/');
  if (built >= 0) return url.slice(built + '/.cache/authgate-bench/'.length);
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const bench = url.indexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1);
  return url.replace(/^file:\/\//, '');
}

/**
 * A profile without the samples of starting the profiler itself (the inspector call that starts
 * it blocks for a moment and would be charged to the scenario).
 */
export function loadProfile(file: string): CpuProfile {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const excluded = new Set<number>();
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const mark = (id: number): void => {
    excluded.add(id);
    for (const c of byId.get(id)?.children ?? []) mark(c);
  };
  for (const n of p.nodes) if (n.callFrame.functionName === 'profileStart' && !excluded.has(n.id)) mark(n.id);
  if (excluded.size === 0) return p;
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  for (let i = 0; i < p.samples.length; i++) {
    if (excluded.has(p.samples[i] as number)) continue;
    samples.push(p.samples[i] as number);
    timeDeltas.push(p.timeDeltas[i] ?? 0);
  }
  return { ...p, samples, timeDeltas };
}

export function summarizeProfile(file: string, top = 30): string {
  const p = loadProfile(file);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i] as number, (selfUs.get(p.samples[i] as number) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, v]) => a + v, 0);
  const busy = total - idle;
  const byFn = new Map<string, number>();
  const byModule = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)') continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const mod = moduleOf(url, functionName);
    const key = `${functionName || '(anonymous)'}  ${mod}${url ? `:${lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
  }
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: ProfileNode): string => {
    const { functionName, url, lineNumber } = n.callFrame;
    return `${functionName || '(anonymous)'}  ${moduleOf(url, functionName)}${url ? `:${lineNumber + 1}` : ''}`;
  };
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    if (byId.get(id)?.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (!n) break;
      const k = keyOf(n);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const pct = (v: number): string => `${((v / busy) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (percentages of busy time)`, '', 'by module:'];
  for (const [k, v] of [...byModule.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'by function (self time):');
  for (const [k, v] of [...byFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', "inclusive, the gateway's own code (src/) and the libraries it calls:");
  const own = [...inclusive.entries()].filter(([k]) => / (src\/|@fastify\/|fastify|prom-client|pino|lru-cache|fast-jwt|undici|ioredis|better-sqlite3)/.test(k));
  for (const [k, v] of own.sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}


/** Self time (µs) per module and per function of a profile, idle excluded. */
export function selfTimes(file: string): { byModule: Map<string, number>; byFn: Map<string, number>; busy: number } {
  const p = loadProfile(file);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byModule = new Map<string, number>();
  const byFn = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i] as number);
    const us = p.timeDeltas[i] ?? 0;
    if (!n || n.callFrame.functionName === '(idle)') continue;
    busy += us;
    const { functionName, url, lineNumber } = n.callFrame;
    const mod = moduleOf(url, functionName);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
    const key = `${functionName || '(anonymous)'}  ${mod}${url ? `:${lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  return { byModule, byFn, busy };
}

/**
 * Where a scenario spends more CPU per request than another (e.g. anonymous vs bare): self time
 * per request by module and by function, from two profiles and their request counts.
 */
export function diffProfiles(a: string, aRequests: number, b: string, bRequests: number, top = 30): string {
  const A = selfTimes(a);
  const B = selfTimes(b);
  const lines = [`${b} vs ${a}: ${(B.busy / bRequests).toFixed(1)} vs ${(A.busy / aRequests).toFixed(1)} µs busy per request`, '', 'by module (µs per request: b, a, difference):'];
  const rows = (ma: Map<string, number>, mb: Map<string, number>): [string, number, number][] =>
    [...new Set([...ma.keys(), ...mb.keys()])].map((k) => [k, (mb.get(k) ?? 0) / bRequests, (ma.get(k) ?? 0) / aRequests] as [string, number, number]);
  for (const [k, vb, va] of rows(A.byModule, B.byModule).sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2])).slice(0, top))
    lines.push(`  ${vb.toFixed(2).padStart(7)} ${va.toFixed(2).padStart(7)} ${(vb - va >= 0 ? '+' : '') + (vb - va).toFixed(2).padStart(6)}  ${k}`);
  lines.push('', 'by function (µs per request: b, a, difference):');
  for (const [k, vb, va] of rows(A.byFn, B.byFn).sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2])).slice(0, top))
    lines.push(`  ${vb.toFixed(2).padStart(7)} ${va.toFixed(2).padStart(7)} ${(vb - va >= 0 ? '+' : '') + (vb - va).toFixed(2).padStart(6)}  ${k}`);
  return lines.join('\n');
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapNode[];
}

/**
 * A sampled allocation profile (HeapProfiler.stopSampling, scavenged objects included) as bytes
 * allocated per request, by module and by function. A function inlined by the optimizer counts
 * its allocations in its caller.
 */
export function summarizeHeapProfile(file: string, requests: number, top = 30): string {
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };
  const byModule = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  const stack: HeapNode[] = [head];
  while (stack.length > 0) {
    const n = stack.pop() as HeapNode;
    if (n.children) stack.push(...n.children);
    if (n.selfSize === 0) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const mod = moduleOf(url, functionName || '(anonymous)');
    total += n.selfSize;
    byModule.set(mod, (byModule.get(mod) ?? 0) + n.selfSize);
    const key = `${functionName || '(anonymous)'}  ${mod}${url ? `:${lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + n.selfSize);
  }
  const per = (bytes: number): string => `${Math.round(bytes / requests).toLocaleString('en-US').padStart(7)} B`;
  const lines = [`allocation profile ${file}: ${per(total).trim()} allocated per request (${requests.toLocaleString('en-US')} requests)`, '', 'by module (bytes per request):'];
  for (const [k, v] of [...byModule].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${per(v)}  ${k}`);
  lines.push('', 'by function (bytes per request):');
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${per(v)}  ${k}`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const requestsOf = (file: string): number => (JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { ok: number }).ok;
  if (argv[0]?.endsWith('.heapprofile')) {
    console.log(summarizeHeapProfile(argv[0], requestsOf(argv[0]), argv[1] ? Number(argv[1]) : 30));
  } else if (argv[0] === '--diff' && argv[1] && argv[2]) {
    console.log(diffProfiles(argv[1], requestsOf(argv[1]), argv[2], requestsOf(argv[2]), argv[3] ? Number(argv[3]) : 30));
  } else if (argv[0] && !argv[0].startsWith('-')) {
    console.log(summarizeProfile(argv[0], argv[1] ? Number(argv[1]) : 30));
  } else {
    console.error('usage: profile.ts FILE.cpuprofile [TOP]\n       profile.ts FILE.heapprofile [TOP]   (bytes allocated per request)\n       profile.ts --diff BASE.cpuprofile OTHER.cpuprofile [TOP]   (reads FILE.cpuprofile.json request counts)');
    process.exit(2);
  }
}
