// CSRF defence for cookie-authenticated requests (SPEC 4 step 6, THREATS 31): an unsafe request
// must come from publicUrl's origin or one in `server.allowedOrigins`, as told by `Origin` (or,
// lacking it, `Referer`). No header at all, `Origin: null` or `Sec-Fetch-Site: cross-site` → refuse.
import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../context.js';
import { isAllowedOrigin, originPolicy, parseHttpUrl } from '../util/origin.js';

/** Methods that never change state; every other method (POST, PUT, PATCH, DELETE, …) is unsafe. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isUnsafeMethod(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

function single(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/** True when the request says it comes from an allowed origin (see the file comment). */
export function isSameOriginRequest(headers: IncomingHttpHeaders, ctx: Pick<GatewayContext, 'publicUrl' | 'config'>): boolean {
  if (single(headers['sec-fetch-site'])?.trim().toLowerCase() === 'cross-site') return false;
  const policy = originPolicy(ctx);
  const origin = headers.origin;
  if (origin !== undefined) {
    const value = single(origin);
    if (value === undefined || value === 'null') return false;
    const url = parseHttpUrl(value);
    // An Origin header is exactly a serialized origin; anything else is not from a browser.
    if (url === undefined || url.origin !== value) return false;
    return isAllowedOrigin(url, policy.own, policy.requestOrigins);
  }
  const referer = single(headers.referer);
  if (referer === undefined) return false;
  const url = parseHttpUrl(referer);
  return url !== undefined && isAllowedOrigin(url, policy.own, policy.requestOrigins);
}

/**
 * For credentials a browser re-sends on its own that are not cookies (cached HTTP Basic): a
 * request that says it comes from another site. Unlike the cookie rule, no header at all passes
 * (curl and API clients send none).
 */
export function isCrossSiteBrowserRequest(headers: IncomingHttpHeaders, ctx: Pick<GatewayContext, 'publicUrl' | 'config'>): boolean {
  if (single(headers['sec-fetch-site'])?.trim().toLowerCase() === 'cross-site') return true;
  return headers.origin !== undefined && !isSameOriginRequest({ origin: headers.origin }, ctx);
}

/** True when the request carries any of the headers a browser adds to say where it comes from. */
export function hasBrowserOriginHeaders(headers: IncomingHttpHeaders): boolean {
  return headers.origin !== undefined || headers.referer !== undefined || headers['sec-fetch-site'] !== undefined;
}

/** The check for one request: safe methods pass; unsafe ones must be same-origin. */
export function passesCsrfCheck(method: string, headers: IncomingHttpHeaders, ctx: Pick<GatewayContext, 'publicUrl' | 'config'>): boolean {
  return !isUnsafeMethod(method) || isSameOriginRequest(headers, ctx);
}
