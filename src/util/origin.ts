// Origin patterns (SPEC 4 step 6; `server.allowedOrigins`, `login.allowedRedirects`): the one
// implementation used by the CSRF check and by redirect validation. A pattern is
// `scheme://host[:port]`; a host starting with `*.` matches any subdomain, never the bare domain.
// Everything is compared after WHATWG URL parsing, so case, IDNA dots and default ports agree.
import type { GatewayContext } from '../context.js';

export interface OriginPattern {
  /** `http:` or `https:` */
  readonly protocol: string;
  /** Lower-case ASCII host (punycode), without the `*.` of a wildcard pattern. */
  readonly host: string;
  /** '' for the scheme's default port. */
  readonly port: string;
  readonly wildcard: boolean;
}

const PATTERN_RE = /^(https?):\/\/(\*\.)?([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/;

/** Parses one configured pattern; throws on a malformed one (the config schema prevents it). */
export function parseOriginPattern(pattern: string): OriginPattern {
  const m = PATTERN_RE.exec(pattern.trim());
  if (!m) throw new Error(`invalid origin pattern: ${pattern}`);
  const [, scheme, star, host, port] = m as unknown as [string, string, string | undefined, string, string | undefined];
  // Let the URL parser normalise case and default ports (https://x:443 == https://x).
  const url = new URL(`${scheme}://${host}${port === undefined ? '' : `:${port}`}`);
  if (url.hostname === '' || url.hostname.startsWith('.') || url.hostname.endsWith('.')) throw new Error(`invalid origin pattern: ${pattern}`);
  return { protocol: url.protocol, host: url.hostname, port: url.port, wildcard: star !== undefined };
}

export function parseOriginPatterns(patterns: readonly string[] | undefined): OriginPattern[] {
  return (patterns ?? []).map(parseOriginPattern);
}

/**
 * True when the parsed URL's origin matches the pattern: same scheme and port, and the host is
 * equal (or, for `*.` patterns, ends with `.` + host with at least one more label before it).
 */
export function originMatchesPattern(url: URL, pattern: OriginPattern): boolean {
  if (url.protocol !== pattern.protocol || url.port !== pattern.port) return false;
  const host = url.hostname;
  if (!pattern.wildcard) return host === pattern.host;
  const suffix = `.${pattern.host}`;
  return host.length > suffix.length && host.endsWith(suffix) && !host.startsWith('.');
}

/**
 * Parses an origin-like string (an `Origin` header value, a Referer, a redirect target) into a
 * URL with an http(s) tuple origin, or undefined. Userinfo is refused: it has no place in an origin.
 */
export function parseHttpUrl(value: string, base?: string | URL): URL | undefined {
  let url: URL;
  try {
    url = base === undefined ? new URL(value) : new URL(value, base);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  if (url.hostname === '') return undefined;
  return url;
}

/** True when `url`'s origin is `own`'s origin or matches one of the patterns. */
export function isAllowedOrigin(url: URL, own: URL, patterns: readonly OriginPattern[]): boolean {
  if (url.origin === own.origin) return true;
  for (const p of patterns) if (originMatchesPattern(url, p)) return true;
  return false;
}

/**
 * CSP source expressions for the patterns (e.g. `https://*.example.com`), so a page's
 * `form-action` allows the same origins a redirect may go to.
 */
export function cspSources(patterns: readonly OriginPattern[]): string[] {
  return patterns.map((p) => `${p.protocol}//${p.wildcard ? '*.' : ''}${p.host}${p.port === '' ? '' : `:${p.port}`}`);
}

export interface OriginPolicy {
  /** publicUrl: its origin is always allowed. */
  readonly own: URL;
  /** `server.allowedOrigins`, for the CSRF check. */
  readonly requestOrigins: readonly OriginPattern[];
  /** `login.allowedRedirects`, for `rd` targets. */
  readonly redirectOrigins: readonly OriginPattern[];
}

const policies = new WeakMap<Pick<GatewayContext, 'publicUrl' | 'config'>, OriginPolicy>();

/** The parsed origin patterns of one loaded config (parsed once per context). */
export function originPolicy(ctx: Pick<GatewayContext, 'publicUrl' | 'config'>): OriginPolicy {
  let policy = policies.get(ctx);
  if (policy === undefined) {
    policy = {
      own: ctx.publicUrl,
      requestOrigins: parseOriginPatterns(ctx.config.server?.allowedOrigins),
      redirectOrigins: parseOriginPatterns(ctx.config.login?.allowedRedirects),
    };
    policies.set(ctx, policy);
  }
  return policy;
}
