// Who is asking, over what, for which host (SPEC 4 step 3, THREATS 76): the one computation of
// client address, protocol and host, shared by proxied requests, WebSocket upgrades and
// forward-auth, so a lockout counter or a host route can never see two different answers.
import type { IncomingMessage } from 'node:http';
import { isTrustedAddress, type Trust } from '../util/trust.js';

export interface ClientInfo {
  /** The peer is a trusted proxy: its X-Forwarded-For/Proto/Host are believed. */
  readonly trusted: boolean;
  /** The socket's remote address (the hop the gateway appends to X-Forwarded-For). */
  readonly peer: string;
  /** The client: the rightmost X-Forwarded-For entry that is not a trusted proxy, else the peer. */
  readonly ip: string;
  readonly protocol: string;
  /** The Host (or, from a trusted proxy, the last X-Forwarded-Host entry), trailing dots removed. */
  readonly host: string;
}

function lastEntry(value: string): string {
  const comma = value.lastIndexOf(',');
  return (comma === -1 ? value : value.slice(comma + 1)).trim();
}

/**
 * The address a chain of trusted proxies vouches for: walking X-Forwarded-For from the right,
 * the first entry that is not itself a trusted proxy (what proxy-addr, and so Fastify, answer).
 * Entries a client wrote to the left of it are never believed.
 */
function forwardedClient(trust: Trust, xff: string, peer: string): string {
  let end = xff.length;
  let leftmost = peer;
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1);
    const entry = xff.slice(comma + 1, end).trim();
    end = comma === -1 ? 0 : comma;
    if (entry === '') continue;
    if (!isTrustedAddress(trust, entry)) return entry;
    leftmost = entry;
  }
  return leftmost;
}

/**
 * `admin.example.com.` is the same host as `admin.example.com` to DNS and to most upstreams:
 * drop trailing dots so a host route cannot be skipped by adding one.
 */
export function normalizeHost(host: string): string {
  const bracket = host.lastIndexOf(']');
  const colon = host.lastIndexOf(':');
  const portAt = colon > bracket ? colon : host.length;
  let end = portAt;
  while (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  return end === portAt ? host : host.slice(0, end) + host.slice(portAt);
}

export function clientInfo(trust: Trust, req: IncomingMessage): ClientInfo {
  const peer = req.socket.remoteAddress ?? '';
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  const headers = req.headers;
  const trusted = trust.has && isTrustedAddress(trust, peer);
  if (!trusted) return { trusted, peer, ip: peer, protocol: encrypted ? 'https' : 'http', host: normalizeHost(headers.host ?? '') };
  const xff = headers['x-forwarded-for'];
  const xfp = headers['x-forwarded-proto'];
  const xfh = headers['x-forwarded-host'];
  return {
    trusted,
    peer,
    ip: typeof xff === 'string' && xff !== '' ? forwardedClient(trust, xff, peer) : peer,
    protocol: typeof xfp === 'string' && xfp !== '' ? lastEntry(xfp) : encrypted ? 'https' : 'http',
    host: normalizeHost(typeof xfh === 'string' && xfh !== '' ? lastEntry(xfh) : headers.host ?? ''),
  };
}

/** `host` names the gateway's public host (`publicHost` in lower case); no allocation when it is spelled the same. */
export function isPublicHost(host: string, publicHost: string): boolean {
  return host === publicHost || (host.length === publicHost.length && host.toLowerCase() === publicHost);
}
