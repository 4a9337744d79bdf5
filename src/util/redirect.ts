// Validation of post-login / post-logout redirect targets (`rd`, THREATS 37-41). A target is
// accepted only when it resolves (WHATWG URL, against publicUrl) to publicUrl's origin or to an
// origin in `login.allowedRedirects` — and so does every percent-decoded form of it, so a layer
// that decodes once more (a browser, an upstream, a second redirect) cannot turn it into another.
import type { GatewayContext } from '../context.js';
import { originMatchesPattern, originPolicy, parseHttpUrl, type OriginPolicy } from './origin.js';

export const DEFAULT_REDIRECT = '/';
const MAX_TARGET_LENGTH = 2048;
/** Percent-decodings checked (`%252F` → `%2F` → `/`); a value still changing after them is refused. */
const MAX_DECODINGS = 4;

// C0 controls, DEL and backslash (browsers read `\` as `/` in http(s) URLs).
const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const HTTP_URL_RE = /^https?:\/\//i;
// Characters that IDNA/URL parsers map to `.` or `/` in hosts (`evil。test` → evil.test).
const CONFUSABLE = /[\u3002\uff0e\uff61\u2024\ufe52\uff0f\u2215\u2044\ufe68\uff3c\u2216\ufe6b\uff20]/;

/**
 * A safe redirect target for `rd`: a same-origin path (`/x?y#z`) or, for an allowed other origin,
 * the absolute URL. Anything else — not a string, empty, too long, or failing a check — gives `/`.
 */
export function safeRedirectTarget(rd: unknown, ctx: Pick<GatewayContext, 'publicUrl' | 'config'>): string {
  if (typeof rd !== 'string' || rd === '' || rd.length > MAX_TARGET_LENGTH) return DEFAULT_REDIRECT;
  const policy = originPolicy(ctx);
  const result = checkTarget(rd, policy, true);
  if (result === undefined) return DEFAULT_REDIRECT;
  let current = rd;
  for (let level = 0; ; level++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(current);
    } catch {
      return DEFAULT_REDIRECT; // malformed percent-encoding: not something we produced
    }
    if (decoded === current) return result;
    if (level === MAX_DECODINGS || checkTarget(decoded, policy, false) === undefined) return DEFAULT_REDIRECT;
    current = decoded;
  }
}

function checkTarget(value: string, policy: OriginPolicy, raw: boolean): string | undefined {
  if (FORBIDDEN.test(value) || CONFUSABLE.test(value)) return undefined;
  // The URL parser silently strips leading/trailing spaces (` //evil` → `//evil`); refuse them,
  // and any whitespace at all in the raw value (a URL on the wire never contains one).
  if (raw ? /\s/.test(value) : /^\s|\s$/.test(value)) return undefined;
  if (value.normalize('NFKC') !== value) return undefined;
  // A scheme must be followed by `//`: `https:evil.test` is relative to a WHATWG parser but not
  // to every client, and `javascript:`/`data:` have no business here.
  if (SCHEME_RE.test(value) && !HTTP_URL_RE.test(value)) return undefined;
  const url = parseHttpUrl(value, policy.own);
  if (url === undefined) return undefined;
  if (url.origin === policy.own.origin) {
    // `/.//evil` resolves to the path `//evil`, which a browser reads as scheme-relative.
    if (url.pathname.startsWith('//')) return undefined;
    return `${url.pathname}${url.search}${url.hash}`;
  }
  for (const p of policy.redirectOrigins) if (originMatchesPattern(url, p)) return url.href;
  return undefined;
}
