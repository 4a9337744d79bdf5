// WebSocket upgrades (route `websocket: true`): normalized, matched and authenticated exactly
// like any request (THREATS 70); tunnelled only after the upstream answers 101 (THREATS 90).
import { request as httpRequest, STATUS_CODES, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { fastifyCookie } from '@fastify/cookie';
import type { FastifyBaseLogger } from 'fastify';
import type { GatewayContext } from '../context.js';
import { problemBody, type ErrorCode } from '../errors.js';
import type { AssertionSigner } from '../pipeline/assertion.js';
import type { Decider } from '../pipeline/decide.js';
import type { IdentityHeaders } from '../pipeline/identity.js';
import type { AuthRequest } from '../pipeline/types.js';
import { encodePath } from '../routing/normalize.js';
import type { Trust } from '../util/trust.js';
import { clientInfo } from './client-info.js';
import { forwardContextFor, hasAmbiguousCredentials, rewriteForwardHeaders, stripQueryParams, withoutUnset } from './forward-headers.js';

export interface UpgradeContext {
  ctx: GatewayContext;
  decider: Decider;
  identityHeaders: IdentityHeaders;
  trust: Trust;
  sessionCookie: string;
  assertion: AssertionSigner | undefined;
  log: FastifyBaseLogger;
}

function refuse(socket: Duplex, code: ErrorCode, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(problemBody(code));
  const lines = [`HTTP/1.1 ${problemBody(code).status} ${STATUS_CODES[problemBody(code).status] ?? 'Error'}`, 'Content-Type: application/problem+json', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', 'Cache-Control: no-store'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (socket.writable) socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

export function handleUpgrade(u: UpgradeContext, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  run(u, req, socket, head).catch((err: unknown) => {
    u.log.error({ err }, 'websocket upgrade failed');
    refuse(socket, 'service_unavailable');
  });
}

async function run(u: UpgradeContext, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || req.method !== 'GET') return refuse(socket, 'bad_request');
  const target = u.decider.normalize(req.url ?? '/');
  if (!target.ok) return refuse(socket, 'bad_path');
  // The same address, protocol and host as an HTTP request would get (issue 9 item 4).
  const client = clientInfo(u.trust, req);
  const route = u.decider.match(client.host, target.path, 'GET');
  if (!route || !route.data.websocket) return refuse(socket, 'no_route');
  const data = route.data;
  if (!data.anonymous && hasAmbiguousCredentials(req.rawHeaders, req.headers, target.query)) return refuse(socket, 'bad_request');
  const authReq: AuthRequest = {
    method: 'GET',
    path: target.path,
    query: target.query,
    host: client.host,
    headers: req.headers,
    ip: client.ip,
    peer: client.peer,
    cookies: req.headers.cookie ? fastifyCookie.parse(req.headers.cookie) : {},
    log: u.log,
  };
  const decision = await u.decider.decide(route, authReq, target.path, true);
  if (decision.kind === 'deny') return refuse(socket, decision.redirect ? 'unauthenticated' : decision.code, decision.headers ?? {});

  const upstream = data.upstream.pick(Date.now());
  const headers = withoutUnset(rewriteForwardHeaders({ ...req.headers }, forwardContextFor(route, client, decision.identity, u), u.identityHeaders));
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  const url = new URL(upstream.origin);
  delete headers.host;
  headers.host = url.host;
  const query = data.passCredentials ? target.query : stripQueryParams(target.query, data.credentialQueryParams);
  const path = upstream.basePath + encodePath(u.decider.upstreamPath(route, target.path)) + (query ? `?${query}` : '');
  const requestFn = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const upReq = requestFn({ host: url.hostname, port: url.port || (url.protocol === 'https:' ? 443 : 80), method: 'GET', path, headers, timeout: 10_000 });
  upReq.on('timeout', () => upReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })));
  upReq.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ECONNREFUSED') data.upstream.markDown(upstream, Date.now());
    refuse(socket, err.code === 'ETIMEDOUT' ? 'upstream_timeout' : 'upstream_unavailable');
  });
  upReq.on('response', (res) => {
    // No 101: pass the upstream's answer through and close; nothing is tunnelled.
    const lines = [`HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      const name = (res.rawHeaders[i] as string).toLowerCase();
      if (name === 'connection' || name === 'transfer-encoding' || name === 'upgrade' || name === 'keep-alive') continue;
      lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    }
    lines.push('Connection: close');
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    res.pipe(socket);
  });
  upReq.on('upgrade', (res, upSocket, upHead) => {
    const lines = [`HTTP/1.1 101 Switching Protocols`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.on('error', () => socket.destroy());
    socket.on('error', () => upSocket.destroy());
    socket.on('close', () => upSocket.destroy());
    upSocket.on('close', () => socket.destroy());
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  upReq.end();
}
