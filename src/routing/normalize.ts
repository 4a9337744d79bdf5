// Request-target normalization (SPEC 4 step 1): decode once, resolve dot segments, merge
// repeated slashes, refuse what different servers would read differently. The path returned
// here is both what routes are matched against and (re-encoded) what the upstream receives.

export type NormalizedTarget =
  | { ok: true; path: string; query: string }
  | { ok: false; reason: string };

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Characters that may stand unencoded in a forwarded path segment (RFC 3986 pchar minus '%').
 * Everything else, including '?', '#', '%' and non-ASCII bytes, is percent-encoded again.
 */
const PCHAR_SAFE = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/") PCHAR_SAFE[ch.charCodeAt(0)] = 1;

/** Encode a decoded path for the upstream: the one canonical form of the matched path. */
export function encodePath(decoded: string): string {
  let simple = true;
  for (let i = 0; i < decoded.length; i++) {
    const c = decoded.charCodeAt(i);
    if (c >= 128 || PCHAR_SAFE[c] !== 1) { simple = false; break; }
  }
  if (simple) return decoded;
  const bytes = Buffer.from(decoded, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b < 128 && PCHAR_SAFE[b] === 1) out += String.fromCharCode(b);
    else out += '%' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/**
 * Normalize a raw request-target (`req.url`). Refused (400 bad_path): anything that is not an
 * origin-form path, control characters, raw or encoded backslash, encoded slash, NUL, encoded
 * dot segments, `..;`-style segments, invalid percent-encoding or UTF-8, a raw '#'.
 */
export function normalizeTarget(rawUrl: string): NormalizedTarget {
  if (rawUrl.length === 0 || rawUrl.charCodeAt(0) !== 47 /* / */) return { ok: false, reason: 'request target must be an absolute path' };
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? '' : rawUrl.slice(q + 1);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c < 0x21 || c === 0x7f || c === 35 /* # */) return { ok: false, reason: 'invalid character in query' };
  }

  // Fast path: nothing to decode, no dot segments, no doubled slashes.
  let needsWork = false;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c >= 0x80 || c === 92 /* \ */ || c === 35 /* # */) return { ok: false, reason: 'invalid character in path' };
    if (c === 37 /* % */ || (c === 46 /* . */ && rawPath.charCodeAt(i - 1) === 47) || (c === 47 && rawPath.charCodeAt(i + 1) === 47)) needsWork = true;
    if (c === 59 /* ; */ && rawPath.charCodeAt(i - 1) === 46) needsWork = true;
  }
  if (!needsWork) return { ok: true, path: rawPath, query };

  // Split on raw '/', decode each segment once, then resolve dot segments.
  const rawSegments = rawPath.split('/');
  const out: string[] = [];
  const last = rawSegments.length - 1;
  for (let s = 1; s <= last; s++) {
    const raw = rawSegments[s] as string;
    if (raw === '') {
      // Repeated slashes merge; a trailing slash is kept.
      if (s === last) out.push('');
      continue;
    }
    if (raw === '.' || raw === '..') {
      if (raw === '..') out.pop();
      if (s === last) out.push('');
      continue;
    }
    if (raw.startsWith('.;') || raw.startsWith('..;')) return { ok: false, reason: 'path parameter on a dot segment' };
    let decoded: string;
    if (raw.includes('%')) {
      const bytes: number[] = [];
      for (let i = 0; i < raw.length; i++) {
        const c = raw.charCodeAt(i);
        if (c === 37) {
          const hi = hexValue(raw.charCodeAt(i + 1));
          const lo = hexValue(raw.charCodeAt(i + 2));
          if (hi < 0 || lo < 0) return { ok: false, reason: 'invalid percent-encoding' };
          const b = hi * 16 + lo;
          if (b === 47 || b === 92 || b === 0) return { ok: false, reason: 'encoded slash, backslash or NUL' };
          if (b < 0x20 || b === 0x7f) return { ok: false, reason: 'encoded control character' };
          bytes.push(b);
          i += 2;
        } else bytes.push(c);
      }
      const buf = Buffer.from(bytes);
      decoded = buf.toString('utf8');
      if (!Buffer.from(decoded, 'utf8').equals(buf)) return { ok: false, reason: 'invalid UTF-8 in path' };
      if (decoded === '.' || decoded === '..') return { ok: false, reason: 'encoded dot segment' };
      if (decoded.startsWith('.;') || decoded.startsWith('..;')) return { ok: false, reason: 'path parameter on a dot segment' };
    } else decoded = raw;
    out.push(decoded);
  }
  return { ok: true, path: '/' + out.join('/'), query };
}
