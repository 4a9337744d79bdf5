// CORS at the gateway (SPEC 3 route `cors`; THREATS 71). A preflight (`OPTIONS` with
// `Access-Control-Request-Method`) carries no credentials, so it can never pass an auth chain:
// with a `cors` policy the gateway answers it itself (204) and only for a listed origin; with
// `cors: passthrough` it is forwarded to the upstream unauthenticated; without `cors` it goes
// through the chain as any request. Actual responses to a listed origin get
// `Access-Control-Allow-Origin` (that origin, never `*`), `-Credentials` and `Vary: Origin`; the
// upstream's own `Access-Control-Allow-*` headers are dropped on such routes: the gateway decides.
// Pure functions: the proxy handler calls them with the route's compiled policy.
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { CorsConfig } from '../config/schema.js';
import { durationMs } from '../util/duration.js';
import { originMatchesPattern, parseHttpUrl, parseOriginPatterns, type OriginPattern } from '../util/origin.js';

export type CompiledCors =
  | { readonly kind: 'passthrough' }
  | {
      readonly kind: 'policy';
      readonly origins: readonly OriginPattern[];
      /** Serialized origins of the exact (non-wildcard) patterns: answered without URL parsing. */
      readonly exact: ReadonlySet<string>;
      /** Verdicts for other Origin values (parsing one costs microseconds; bounded, pure). */
      readonly verdicts: LRUCache<string, boolean>;
      readonly methods: ReadonlySet<string>;
      /** `Access-Control-Allow-Methods` value. */
      readonly methodsHeader: string;
      /** Allowed request header names, lower case. */
      readonly headers: ReadonlySet<string>;
      readonly credentials: boolean;
      /** `Access-Control-Max-Age` value (seconds), when configured. */
      readonly maxAge: string | undefined;
    };

const DEFAULT_METHODS = ['GET', 'HEAD', 'POST'];
const VERDICT_CACHE_MAX = 1000;
const VERDICT_CACHE_TTL_MS = 10 * 60_000;
/** Longer Origin values are never a listed origin (hosts are at most 253 characters). */
const MAX_ORIGIN_LENGTH = 300;
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Response headers the gateway owns on a `cors` route. */
const OWNED = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age'];

/** A route's `cors` setting, compiled once per loaded config; undefined without one. */
export function compileCors(cfg: CorsConfig | undefined, routeMethods: readonly string[] | undefined): CompiledCors | undefined {
  if (cfg === undefined) return undefined;
  if (cfg === 'passthrough') return { kind: 'passthrough' };
  const methods = cfg.methods ?? routeMethods ?? DEFAULT_METHODS;
  const origins = parseOriginPatterns(cfg.origins);
  return {
    kind: 'policy',
    origins,
    exact: new Set(origins.filter((p) => !p.wildcard).map((p) => `${p.protocol}//${p.host}${p.port === '' ? '' : `:${p.port}`}`)),
    verdicts: new LRUCache<string, boolean>({ max: VERDICT_CACHE_MAX, ttl: VERDICT_CACHE_TTL_MS }),
    methods: new Set(methods),
    methodsHeader: [...new Set(methods)].join(', '),
    headers: new Set((cfg.headers ?? []).map((h) => h.toLowerCase())),
    credentials: cfg.credentials === true,
    maxAge: cfg.maxAge === undefined ? undefined : String(Math.floor(durationMs(cfg.maxAge) / 1000)),
  };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
}

/** The method a preflight asks about (upper case), or undefined when the request is no preflight. */
export function preflightMethod(method: string, headers: IncomingHttpHeaders): string | undefined {
  if (method !== 'OPTIONS') return undefined;
  const requested = single(headers['access-control-request-method'])?.trim();
  // A present but malformed value still makes it a preflight: it asks for a method nobody lists.
  if (requested === undefined) return headers['access-control-request-method'] === undefined ? undefined : '';
  return TOKEN_RE.test(requested) ? requested.toUpperCase() : '';
}

/** The request's `Origin` when it is exactly a serialized http(s) origin that the policy lists. */
function listedOrigin(cors: CompiledCors, headers: IncomingHttpHeaders): string | undefined {
  if (cors.kind !== 'policy') return undefined;
  const origin = single(headers.origin);
  if (origin === undefined || origin === 'null' || origin.length > MAX_ORIGIN_LENGTH) return undefined;
  if (cors.exact.has(origin)) return origin;
  let listed = cors.verdicts.get(origin);
  if (listed === undefined) {
    const url = parseHttpUrl(origin);
    listed = url !== undefined && url.origin === origin && cors.origins.some((p) => originMatchesPattern(url, p));
    cors.verdicts.set(origin, listed);
  }
  return listed ? origin : undefined;
}

type PreflightAnswer =
  /** 204 with these headers. */
  | { readonly kind: 'allow'; readonly headers: Record<string, string> }
  /** Not for this origin, method or these headers: refused, with no CORS header at all. */
  | { readonly kind: 'refuse'; readonly headers: Record<string, string> }
  /** `cors: passthrough`: forward it, unauthenticated. */
  | { readonly kind: 'passthrough' };

const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

/** The gateway's answer to a preflight on a route with `cors` (`requested`: from preflightMethod). */
export function answerPreflight(cors: CompiledCors, headers: IncomingHttpHeaders, requested: string): PreflightAnswer {
  if (cors.kind === 'passthrough') return { kind: 'passthrough' };
  const refuse: PreflightAnswer = { kind: 'refuse', headers: { vary: PREFLIGHT_VARY } };
  const origin = listedOrigin(cors, headers);
  if (origin === undefined || !cors.methods.has(requested)) return refuse;
  const asked = (single(headers['access-control-request-headers']) ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
  if (asked.some((h) => !TOKEN_RE.test(h) || !cors.headers.has(h))) return refuse;
  const out: Record<string, string> = {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': cors.methodsHeader,
    vary: PREFLIGHT_VARY,
  };
  if (asked.length > 0) out['access-control-allow-headers'] = asked.join(', ');
  if (cors.credentials) out['access-control-allow-credentials'] = 'true';
  if (cors.maxAge !== undefined) out['access-control-max-age'] = cors.maxAge;
  return { kind: 'allow', headers: out };
}

/** CORS headers for an actual (non-preflight) response on a `cors` route: none for an unlisted origin. */
export function corsResponseHeaders(cors: CompiledCors, requestHeaders: IncomingHttpHeaders): Record<string, string> | undefined {
  const origin = listedOrigin(cors, requestHeaders);
  if (origin === undefined || cors.kind !== 'policy') return undefined;
  return cors.credentials ? { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' } : { 'access-control-allow-origin': origin };
}

/**
 * An upstream response's headers on a route with a `cors` policy: the upstream's own
 * `Access-Control-Allow-*` go, the gateway's are added for a listed origin, `Vary` gains `Origin`.
 */
export function applyCorsToUpstreamHeaders(cors: CompiledCors, requestHeaders: IncomingHttpHeaders, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  if (cors.kind !== 'policy') return headers;
  // `delete` only what is there: deleting turns the object into a slow dictionary.
  for (const name of OWNED) if (headers[name] !== undefined) delete headers[name];
  const own = corsResponseHeaders(cors, requestHeaders);
  if (own !== undefined) Object.assign(headers, own);
  headers.vary = appendVary(headers.vary, 'Origin');
  return headers;
}

const VARY_HAS_ORIGIN = /(?:^|,)\s*(?:origin|\*)\s*(?:,|$)/i;

function appendVary(current: string | string[] | undefined, name: 'Origin'): string {
  const value = Array.isArray(current) ? current.join(', ') : current;
  if (value === undefined || value.trim() === '') return name;
  return VARY_HAS_ORIGIN.test(value) ? value : `${value}, ${name}`;
}
