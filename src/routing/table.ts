// The compiled route table (SPEC 3 `routes`, SPEC 4 step 2): first match in file order wins.
import type { RouteConfig } from '../config/schema.js';

type Segment = { kind: 'literal'; value: string } | { kind: 'one' };

export interface PathPattern {
  readonly segments: readonly Segment[];
  /** Ends in `**`: any number of further segments, including none. */
  readonly rest: boolean;
  /** Pattern without wildcards: one string comparison. */
  readonly exact?: string;
  /** Literal prefix before the first wildcard, for a cheap pre-check. */
  readonly literalPrefix: string;
}

export function compilePathPattern(pattern: string): PathPattern {
  const parts = pattern.split('/').slice(1);
  const segments: Segment[] = [];
  let rest = false;
  let literalPrefix = '';
  let wild = false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (p === '**') {
      if (i !== parts.length - 1) throw new Error(`'**' may only be the last segment: ${pattern}`);
      rest = true;
      wild = true;
    } else if (p === '*') {
      segments.push({ kind: 'one' });
      wild = true;
    } else {
      if (p.includes('*')) throw new Error(`'*' must be a whole segment: ${pattern}`);
      segments.push({ kind: 'literal', value: p });
      if (!wild) literalPrefix += '/' + p;
    }
  }
  return { segments, rest, literalPrefix, ...(wild ? {} : { exact: pattern }) };
}

export function matchPath(p: PathPattern, path: string): boolean {
  if (p.exact !== undefined) return path === p.exact;
  if (!path.startsWith(p.literalPrefix)) return false;
  // Walk segments without allocating an array.
  let pos = 1; // after the leading '/'
  const n = p.segments.length;
  for (let i = 0; i < n; i++) {
    if (pos > path.length) return false;
    let end = path.indexOf('/', pos);
    if (end === -1) end = path.length;
    const seg = p.segments[i] as Segment;
    if (seg.kind === 'literal') {
      if (end - pos !== seg.value.length || !path.startsWith(seg.value, pos)) return false;
    } else if (end === pos) return false; // '*' matches one non-empty segment
    pos = end + 1;
  }
  if (p.rest) return true; // '**': anything (or nothing) after
  return pos === path.length + 1;
}

export interface HostPattern {
  readonly exact?: string;
  /** For `*.example.com`: '.example.com' (a subdomain, never the bare domain). */
  readonly suffix?: string;
  readonly withPort: boolean;
}

export function compileHostPattern(host: string): HostPattern {
  const h = host.toLowerCase();
  const withPort = /:[0-9]+$/.test(h);
  if (h.startsWith('*.')) return { suffix: h.slice(1), withPort };
  return { exact: h, withPort };
}

export function matchHost(p: HostPattern, hostHeader: string): boolean {
  let host = hostHeader.toLowerCase();
  if (!p.withPort) {
    const colon = host.lastIndexOf(':');
    if (colon !== -1 && !host.endsWith(']')) host = host.slice(0, colon);
  }
  if (p.exact !== undefined) return host === p.exact;
  const suffix = p.suffix as string;
  return host.length > suffix.length && host.endsWith(suffix);
}

export interface CompiledRoute<T = unknown> {
  readonly config: RouteConfig;
  readonly name: string;
  readonly host?: HostPattern;
  readonly path: PathPattern;
  readonly methods?: ReadonlySet<string>;
  /** Per-route data attached by the server (authenticators, upstream pool, headers…). */
  readonly data: T;
}

/** Below this many routes a scan in file order is as cheap as finding the candidates. */
const INDEX_FROM = 8;

/** The literal a pattern's first segment must equal, or undefined when it can be anything. */
function firstLiteral(p: PathPattern): string | undefined {
  if (p.exact !== undefined) {
    const end = p.exact.indexOf('/', 1);
    return end === -1 ? p.exact.slice(1) : p.exact.slice(1, end);
  }
  const first = p.segments[0];
  return first?.kind === 'literal' ? first.value : undefined;
}

/** The first segment of a (normalized, '/'-led) path. */
function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

export class RouteTable<T> {
  readonly routes: readonly CompiledRoute<T>[];
  /**
   * With many routes: the routes a path can match, by the path's first segment (those whose
   * pattern starts with that literal, and those whose first segment is a wildcard), each list in
   * file order, so the first match is the same as a scan of every route would find.
   */
  readonly #byFirst: Map<string, readonly CompiledRoute<T>[]> | undefined;
  /** With the index: the routes whose first segment is a wildcard, in file order (for a first segment no route names). */
  readonly #anyFirst: readonly CompiledRoute<T>[];

  constructor(routes: readonly CompiledRoute<T>[]) {
    this.routes = routes;
    if (routes.length < INDEX_FROM) {
      this.#byFirst = undefined;
      this.#anyFirst = [];
      return;
    }
    const firsts = routes.map((r) => firstLiteral(r.path));
    this.#anyFirst = routes.filter((_, i) => firsts[i] === undefined);
    const byFirst = new Map<string, CompiledRoute<T>[]>();
    for (const key of new Set(firsts)) {
      if (key !== undefined) byFirst.set(key, routes.filter((_, i) => firsts[i] === key || firsts[i] === undefined));
    }
    this.#byFirst = byFirst;
  }

  /** First route whose host, path and method match, in file order. */
  match(host: string, path: string, method: string): CompiledRoute<T> | undefined {
    const routes = this.#byFirst === undefined ? this.routes : this.#byFirst.get(firstSegment(path)) ?? this.#anyFirst;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i] as CompiledRoute<T>;
      if (r.methods !== undefined && !r.methods.has(method)) continue;
      if (!matchPath(r.path, path)) continue;
      if (r.host !== undefined && !matchHost(r.host, host)) continue;
      return r;
    }
    return undefined;
  }
}

export function compileRoute<T>(config: RouteConfig, data: T): CompiledRoute<T> {
  return {
    config,
    name: config.name,
    path: compilePathPattern(config.match.path),
    data,
    ...(config.match.host ? { host: compileHostPattern(config.match.host) } : {}),
    ...(config.match.methods ? { methods: new Set(config.match.methods.map((m) => m.toUpperCase())) } : {}),
  };
}

/**
 * Remove `stripPath` from the front of a path (on a segment boundary). `ignoreCase` when routes
 * match case-insensitively (`server.paths.caseInsensitive`), so `/V1/x` loses its `/V1` too.
 */
export function stripPathPrefix(path: string, strip: string | undefined, ignoreCase = false): string {
  if (!strip || strip === '/') return path;
  const s = strip.endsWith('/') ? strip.slice(0, -1) : strip;
  const p = ignoreCase ? path.toLowerCase() : path;
  const cmp = ignoreCase ? s.toLowerCase() : s;
  if (p === cmp) return '/';
  if (p.startsWith(cmp) && path.charCodeAt(s.length) === 47) return path.slice(s.length);
  return path;
}
