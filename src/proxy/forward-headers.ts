// Builds the header set the upstream receives (SPEC 4 steps 3 and 7, THREATS J).
import type { IncomingHttpHeaders } from 'node:http';
import type { AssertionSigner } from '../pipeline/assertion.js';
import type { Route } from '../pipeline/decide.js';
import type { IdentityHeaders } from '../pipeline/identity.js';
import type { Identity } from '../pipeline/types.js';
import type { ClientInfo } from './client-info.js';

/** Hop-by-hop and request-smuggling-prone headers never forwarded (undici refuses several). */
const DROP_ALWAYS = [
  'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'http2-settings', 'expect', 'transfer-encoding',
  'proxy-authorization', 'x-http-method-override', 'x-http-method', 'x-method-override',
];

/**
 * Other forwarded-context headers (THREATS 76): removed from untrusted peers; from a trusted proxy
 * kept as it sent them (the gateway itself reads none of them).
 */
const FORWARDED_CONTEXT = [
  'x-real-ip', 'x-original-url', 'x-original-uri', 'x-original-method', 'x-rewrite-url', 'x-client-ip', 'true-client-ip',
  'cf-connecting-ip', 'x-cluster-client-ip', 'front-end-https', 'x-url-scheme',
];

/**
 * Removes a header by setting it to undefined, which undici skips: `delete` on the request's own
 * header object would turn it into a slow dictionary on every authenticated request.
 */
function unset(headers: IncomingHttpHeaders, name: string): void {
  if (headers[name] !== undefined) headers[name] = undefined;
}

export interface ForwardContext {
  identity: Identity | undefined;
  clientIp: string;
  /** The socket's remote address: the hop appended to a trusted proxy's X-Forwarded-For. */
  peer: string;
  /** The peer is a trusted proxy: its X-Forwarded-For is kept and appended to. */
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

/** The forwarding context of one allowed request: the same for proxied requests and WebSocket upgrades. */
export function forwardContextFor(route: Route, client: ClientInfo, identity: Identity | undefined, gw: { sessionCookie: string; assertion: AssertionSigner | undefined }): ForwardContext {
  const data = route.data;
  return {
    identity,
    clientIp: client.ip,
    peer: client.peer,
    trustedPeer: client.trusted,
    protocol: client.protocol,
    host: client.host,
    stripCredentials: !data.passCredentials,
    credentialHeaders: data.credentialHeaders,
    sessionCookie: gw.sessionCookie,
    credentialCookies: data.credentialCookies,
    assertion: identity && gw.assertion ? gw.assertion.assertionFor(identity, route.name) : undefined,
  };
}

/**
 * Removes every `X-Forwarded-*` under any spelling (`X_Forwarded_User`, `x.forwarded.for`) and
 * `Forwarded` (issue 9 item 1): upstreams that read oauth2-proxy-style `X-Forwarded-User` must
 * only ever see what the gateway set. A trusted proxy's `X-Forwarded-For` is kept (appended to).
 */
function stripForwardedContext(headers: IncomingHttpHeaders, trustedPeer: boolean): string | undefined {
  const priorFor = trustedPeer ? headers['x-forwarded-for'] : undefined;
  for (const name in headers) {
    const c = name.charCodeAt(0);
    if (c !== 120 /* x */ && c !== 102 /* f */ && c !== 116 /* t */ && c !== 99 /* c */) continue;
    const alias = name.includes('_') || name.includes('.');
    const n = alias ? name.replace(/[_.]/g, '-') : name;
    if (n.startsWith('x-forwarded-') || n === 'forwarded') unset(headers, name);
    else if ((alias || !trustedPeer) && FORWARDED_CONTEXT.includes(n)) unset(headers, name);
  }
  return typeof priorFor === 'string' && priorFor !== '' ? priorFor : undefined;
}

/** `rewriteForwardHeaders` leaves removed headers as undefined; node:http.request wants them gone. */
export function withoutUnset(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name in headers) if (headers[name] === undefined) delete headers[name];
  return headers;
}

/** The headers the upstream receives; a removed header is left undefined (undici skips it). */
export function rewriteForwardHeaders(headers: IncomingHttpHeaders, fc: ForwardContext, identityHeaders: IdentityHeaders): IncomingHttpHeaders {
  for (let i = 0; i < DROP_ALWAYS.length; i++) unset(headers, DROP_ALWAYS[i] as string);
  const te = headers.te;
  if (te !== undefined && te !== 'trailers') headers.te = undefined;
  for (const name in headers) if (headers[name] !== undefined && identityHeaders.isManaged(name)) headers[name] = undefined;
  const priorFor = stripForwardedContext(headers, fc.trustedPeer);
  // The gateway's own set: the hop it appends is the peer it saw (nginx's $proxy_add_x_forwarded_for),
  // protocol and host are the ones it matched the route with.
  headers['x-forwarded-for'] = priorFor !== undefined ? `${priorFor}, ${fc.peer}` : fc.clientIp;
  headers['x-forwarded-proto'] = fc.protocol;
  headers['x-forwarded-host'] = fc.host;

  if (fc.stripCredentials) {
    if (fc.identity !== undefined) {
      unset(headers, 'authorization');
      for (let i = 0; i < fc.credentialHeaders.length; i++) unset(headers, fc.credentialHeaders[i] as string);
    }
    const cookie = headers.cookie;
    if (cookie !== undefined && cookie.includes(fc.sessionCookie)) {
      const kept = removeCookie(cookie, fc.sessionCookie);
      headers.cookie = kept === '' ? undefined : kept;
    }
    for (const name of fc.credentialCookies ?? []) {
      const c = headers.cookie;
      if (c === undefined || !c.includes(name)) continue;
      const kept = removeCookie(c, name);
      headers.cookie = kept === '' ? undefined : kept;
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

/**
 * The query string the upstream receives: the original, byte for byte, minus every parameter
 * the gateway read a credential from (`apikey` `queryParam`, THREATS 78). Names are compared
 * after the same decoding URLSearchParams gives the authenticator, so `api%5Fkey=` goes too.
 */
export function stripQueryParams(query: string, names: readonly string[]): string {
  if (query === '' || names.length === 0) return query;
  let changed = false;
  const kept: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    let name = rawName;
    if (rawName.includes('%') || rawName.includes('+')) {
      for (const key of new URLSearchParams(rawName + '=').keys()) name = key;
    }
    if (names.includes(name)) changed = true;
    else kept.push(part);
  }
  return changed ? kept.join('&') : query;
}

/**
 * A `Connection` header naming a framing or routing header (`Connection: Content-Length`) asks
 * every hop to drop it, leaving the body unframed (THREATS 75): such a request is refused.
 */
export function connectionNamesFraming(connection: string | undefined): boolean {
  if (connection === undefined || connection.length < 4 || isPlainConnection(connection)) return false;
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === 'content-length' || t === 'transfer-encoding' || t === 'host') return true;
  }
  return false;
}

/** `keep-alive` or `close` (any case): the Connection values nearly every request carries, naming no header. */
export function isPlainConnection(value: string): boolean {
  const n = value.length;
  if (n === 10) return value === 'keep-alive' || value.toLowerCase() === 'keep-alive';
  if (n === 5) return value === 'close' || value.toLowerCase() === 'close';
  return false;
}
