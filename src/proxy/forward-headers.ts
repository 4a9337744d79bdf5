// Builds the header set the upstream receives (SPEC 4 steps 3 and 7, THREATS J).
import type { IncomingHttpHeaders } from 'node:http';
import type { IdentityHeaders } from '../pipeline/identity.js';
import type { Identity } from '../pipeline/types.js';

/** Hop-by-hop and request-smuggling-prone headers never forwarded (undici refuses several). */
const DROP_ALWAYS = [
  'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'http2-settings', 'expect', 'transfer-encoding',
  'proxy-authorization', 'x-http-method-override', 'x-http-method', 'x-method-override',
];

/** Forwarded-context headers believed only from trusted proxies (THREATS 76). */
const FORWARDED_CONTEXT = [
  'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix',
  'x-forwarded-uri', 'x-forwarded-method', 'x-forwarded-server', 'x-forwarded-ssl', 'x-real-ip', 'x-original-url',
  'x-original-uri', 'x-original-method', 'x-rewrite-url', 'x-client-ip', 'true-client-ip', 'cf-connecting-ip',
  'x-cluster-client-ip', 'front-end-https', 'x-url-scheme',
];

export interface ForwardContext {
  identity: Identity | undefined;
  clientIp: string;
  /** The peer is a trusted proxy: its X-Forwarded-* are kept and appended to. */
  trustedPeer: boolean;
  protocol: string;
  host: string;
  /** Remove consumed credentials (Authorization, API key headers, the session cookie). */
  stripCredentials: boolean;
  credentialHeaders: readonly string[];
  sessionCookie: string;
  /** Other consumed session cookies (django-session), removed with it. */
  credentialCookies?: readonly string[] | undefined;
  assertion?: string | undefined;
}

export function rewriteForwardHeaders(headers: IncomingHttpHeaders, fc: ForwardContext, identityHeaders: IdentityHeaders): IncomingHttpHeaders {
  for (let i = 0; i < DROP_ALWAYS.length; i++) delete headers[DROP_ALWAYS[i] as string];
  const te = headers.te;
  if (te !== undefined && te !== 'trailers') delete headers.te;
  identityHeaders.strip(headers as Record<string, unknown>);
  // Any alias spelling of a forwarded-context header ('X_Forwarded_For') is dropped as well.
  for (const name in headers) {
    if ((name.includes('_') || name.includes('.')) && FORWARDED_CONTEXT.includes(name.replace(/[_.]/g, '-'))) delete headers[name];
  }

  const priorFor = headers['x-forwarded-for'];
  if (!fc.trustedPeer) for (let i = 0; i < FORWARDED_CONTEXT.length; i++) delete headers[FORWARDED_CONTEXT[i] as string];
  headers['x-forwarded-for'] = fc.trustedPeer && typeof priorFor === 'string' && priorFor !== '' ? `${priorFor}, ${fc.clientIp}` : fc.clientIp;
  if (!fc.trustedPeer || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = fc.protocol;
  if (!fc.trustedPeer || headers['x-forwarded-host'] === undefined) headers['x-forwarded-host'] = fc.host;

  if (fc.stripCredentials) {
    if (fc.identity !== undefined) {
      delete headers.authorization;
      for (let i = 0; i < fc.credentialHeaders.length; i++) delete headers[fc.credentialHeaders[i] as string];
    }
    const cookie = headers.cookie;
    if (cookie !== undefined && cookie.includes(fc.sessionCookie)) {
      const kept = removeCookie(cookie, fc.sessionCookie);
      if (kept === '') delete headers.cookie;
      else headers.cookie = kept;
    }
    for (const name of fc.credentialCookies ?? []) {
      const c = headers.cookie;
      if (c === undefined || !c.includes(name)) continue;
      const kept = removeCookie(c, name);
      if (kept === '') delete headers.cookie;
      else headers.cookie = kept;
    }
  }
  if (fc.identity !== undefined) {
    identityHeaders.apply(headers, fc.identity);
    if (fc.assertion !== undefined && identityHeaders.assertionHeader !== undefined) headers[identityHeaders.assertionHeader] = fc.assertion;
  }
  return headers;
}

/** The Cookie header without the named cookie (every occurrence). */
export function removeCookie(header: string, name: string): string {
  const parts = header.split(';');
  const out: string[] = [];
  for (const part of parts) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    const n = eq === -1 ? p : p.slice(0, eq).trim();
    if (n !== name) out.push(p);
  }
  return out.join('; ');
}

/**
 * A request that carries a credential twice (two Authorization headers, which Node would reduce
 * to the first; or a Bearer header plus an `access_token` query parameter) is refused: the
 * gateway must not verify one credential while the upstream might read another (THREATS 14).
 */
export function hasAmbiguousCredentials(rawHeaders: readonly string[], headers: IncomingHttpHeaders, query: string): boolean {
  let authorization = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 13 && name.toLowerCase() === 'authorization' && ++authorization > 1) return true;
  }
  if (query !== '' && headers.authorization !== undefined && /(?:^|&)access_token=/.test(query)) return true;
  return false;
}
