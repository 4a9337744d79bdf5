// The fast path (issue 12): a proxied request never enters Fastify. The public listener's raw
// handler normalizes, matches, runs the chain and forwards with undici's Pool.dispatch straight
// onto the client response: bodies stream both ways with backpressure, a client that goes away
// aborts the upstream request, upstream failures become 502/504 problem+json.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { answerVerify } from '../endpoints/verify.js';
import { GatewayError } from '../errors.js';
import type { RequestLogger } from '../ops/request-log.js';
import { REFUSED_METHODS, type Route } from '../pipeline/decide.js';
import { encodePath } from '../routing/normalize.js';
import { clientInfo } from './client-info.js';
import { answerPreflight, applyCorsToUpstreamHeaders, corsResponseHeaders, preflightMethod } from './cors.js';
import { connectionNamesFraming, forwardContextFor, hasAmbiguousCredentials, rewriteForwardHeaders, stripQueryParams } from './forward-headers.js';
import { rawAuthRequest, readBody, type FastPathDeps } from './request.js';
import { writeProblem, writeRedirect } from './respond.js';
import { isConnectFailure, isTimeout, type UpstreamTarget } from './upstream.js';

export interface ProxyOptions {
  readonly connectTimeout: number;
  readonly upstreamTimeout: number;
}

/** What the request log line and the metrics need to know about one request. */
export interface RequestRecord {
  /** The client address as believed (proxy/client-info.ts), once known. */
  ip?: string | undefined;
  route: string;
  authenticator: string | undefined;
  user: string | undefined;
}

/** Response headers that describe the upstream connection, not the response (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

const NONE: readonly string[] = [];

/** The client's `Connection` tokens: removed before the gateway sets its own headers (THREATS 74). */
function dropConnectionListed(headers: IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (typeof connection !== 'string') return;
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && headers[name] !== undefined) headers[name] = undefined;
  }
}

export class ProxyHandler {
  /** One undici Pool per upstream origin, for the life of this gateway generation. */
  private readonly pools = new Map<string, Pool>();

  constructor(
    private readonly deps: FastPathDeps,
    private readonly opts: ProxyOptions,
  ) {}

  /** Handles one proxied request; resolves with what the log line records. Never throws. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<RequestRecord> {
    const rec: RequestRecord = { route: '-', authenticator: undefined, user: undefined };
    try {
      await this.run(req, res, rec);
    } catch (err) {
      if (err instanceof GatewayError) writeProblem(res, err.code, err.detail, err.headers);
      else {
        this.deps.log.error({ err }, 'proxy request failed');
        writeProblem(res, 'internal');
      }
    }
    return rec;
  }

  private async run(req: IncomingMessage, res: ServerResponse, rec: RequestRecord): Promise<void> {
    const { decider } = this.deps;
    const rawUrl = req.url ?? '/';
    const target = decider.normalize(rawUrl);
    if (!target.ok) return writeProblem(res, 'bad_path', `The request path is not acceptable: ${target.reason}.`);
    const method = req.method ?? 'GET';
    if (REFUSED_METHODS.has(method)) return writeProblem(res, 'method_not_allowed');
    // Connection: Content-Length would unframe the body on the way upstream (THREATS 75).
    if (connectionNamesFraming(req.headers.connection)) return writeProblem(res, 'bad_request', 'The Connection header names a framing header.', { connection: 'close' });
    const client = clientInfo(this.deps.trust, req);
    rec.ip = client.ip;
    // A CORS preflight is matched by the method it asks about; a `cors` route answers it here,
    // before any credential is looked at (proxy/cors.ts).
    const preflight = preflightMethod(method, req.headers);
    const corsRoute = preflight === undefined ? undefined : decider.match(client.host, target.path, preflight || method);
    const corsAnswer = corsRoute?.data.cors === undefined ? undefined : answerPreflight(corsRoute.data.cors, req.headers, preflight as string);
    if (corsAnswer?.kind === 'allow') {
      rec.route = (corsRoute as Route).name;
      res.writeHead(204, corsAnswer.headers);
      res.end();
      return;
    }
    if (corsAnswer?.kind === 'refuse') return writeProblem(res, 'forbidden', 'This cross-origin request is not allowed.', corsAnswer.headers);
    const route = corsAnswer?.kind === 'passthrough' ? corsRoute : decider.match(client.host, target.path, method);
    if (route === undefined) return writeProblem(res, 'no_route');
    rec.route = route.name;
    const data = route.data;
    // A passthrough preflight goes to the upstream unauthenticated.
    const anonymous = data.anonymous || corsAnswer !== undefined;
    // The Origin the response's CORS headers answer (read before the header rewrite reuses req.headers).
    const corsRequest: IncomingHttpHeaders | undefined = data.cors === undefined ? undefined : { origin: req.headers.origin };
    if (!anonymous && hasAmbiguousCredentials(req.rawHeaders, req.headers, target.query)) return writeProblem(res, 'bad_request', 'The request carries more than one credential.');
    let body: Buffer | undefined;
    if (data.needsBody && method !== 'GET' && method !== 'HEAD') body = await readBody(req, this.deps.bodyLimit);
    let identity;
    if (!anonymous) {
      const authReq = rawAuthRequest(req, res, { method, path: target.path, query: target.query, host: client.host, client, peer: client.peer, body }, this.deps.log);
      const host = client.host;
      const originalUrl = host.toLowerCase() === this.deps.ctx.publicUrl.host.toLowerCase() ? rawUrl : `${client.protocol}://${host}${rawUrl}`;
      const decision = await decider.decide(route, authReq, originalUrl);
      rec.authenticator = decision.authenticator;
      rec.user = decision.identity?.user;
      if (decision.kind === 'deny') {
        this.deps.metrics.authOutcomes.inc(decision.authenticator ?? 'none', decision.code);
        if (decision.redirect) return writeRedirect(res, decision.redirect);
        // On a `cors` route the caller's script may read the 401/403.
        const cors = data.cors && corsRequest && corsResponseHeaders(data.cors, corsRequest);
        return writeProblem(res, decision.code, decision.detail, cors ? { ...decision.headers, ...cors } : decision.headers);
      }
      this.deps.metrics.authOutcomes.inc(decision.authenticator, 'ok');
      identity = decision.identity;
    } else {
      rec.authenticator = 'anonymous';
      this.deps.metrics.authOutcomes.inc('anonymous', 'ok');
    }

    const upstream = data.upstream.pick(Date.now());
    const query = data.passCredentials ? target.query : stripQueryParams(target.query, data.credentialQueryParams);
    const path = upstream.basePath + encodePath(decider.upstreamPath(route, target.path)) + (query === '' ? '' : `?${query}`);
    // GET and HEAD bodies are not forwarded (as before with reply-from); other methods stream
    // theirs. Decided before the header rewrite removes Transfer-Encoding.
    const streamBody = body === undefined && method !== 'GET' && method !== 'HEAD' && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
    // The chain has run: the request's own header object becomes the forwarded one (no copy).
    const headers = req.headers;
    dropConnectionListed(headers);
    rewriteForwardHeaders(headers, forwardContextFor(route, client, identity, this.deps), this.deps.identityHeaders);
    headers.host = upstream.host;
    if (body !== undefined) headers['content-length'] = String(body.length);
    await this.forward(req, res, route, upstream, method, path, headers, body, streamBody, corsRequest);
  }

  private pool(upstream: UpstreamTarget): Pool {
    let pool = this.pools.get(upstream.origin);
    if (pool === undefined) {
      pool = new Pool(upstream.origin, {
        connections: 256,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connectTimeout: this.opts.connectTimeout,
        headersTimeout: this.opts.upstreamTimeout,
        bodyTimeout: this.opts.upstreamTimeout,
        // Upstream certificates are verified (THREATS 79).
        connect: { rejectUnauthorized: true },
      });
      this.pools.set(upstream.origin, pool);
    }
    return pool;
  }

  /** Streams the request upstream and the response back; resolves when the response is done. */
  private forward(req: IncomingMessage, res: ServerResponse, route: Route, upstream: UpstreamTarget, method: string, path: string, headers: IncomingHttpHeaders, body: Buffer | undefined, streamBody: boolean, corsRequest: IncomingHttpHeaders | undefined): Promise<void> {
    const startedAt = performance.now();
    const { metrics } = this.deps;
    const timeout = route.data.timeoutMs;
    if (body === undefined && !streamBody && headers['content-length'] !== undefined) headers['content-length'] = undefined;
    const options: Dispatcher.DispatchOptions = {
      path,
      method: method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string | string[]>,
      body: body ?? (streamBody ? req : null),
      ...(timeout !== undefined ? { headersTimeout: timeout, bodyTimeout: timeout } : {}),
    };
    return new Promise<void>((resolve) => {
      let controllerRef: Dispatcher.DispatchController | undefined;
      const onClientGone = (): void => {
        if (!res.writableFinished) controllerRef?.abort(new Error('client closed the connection'));
      };
      res.once('close', onClientGone);
      const finish = (): void => { res.off('close', onClientGone); resolve(); };
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(controller) { controllerRef = controller; },
        onResponseStart(controller, statusCode, upstreamHeaders) {
          if (statusCode < 200) return; // 1xx from the upstream are not relayed
          metrics.upstreamLatency.observe({ route: route.name }, (performance.now() - startedAt) / 1000);
          const cors = route.data.cors;
          if (cors !== undefined && corsRequest !== undefined) applyCorsToUpstreamHeaders(cors, corsRequest, upstreamHeaders as IncomingHttpHeaders);
          const c = upstreamHeaders.connection;
          const listed = typeof c === 'string' && c !== 'keep-alive' && c !== 'close' ? c.toLowerCase().split(',').map((s) => s.trim()) : NONE;
          for (const name in upstreamHeaders) {
            if (HOP_BY_HOP.has(name) || listed.includes(name)) continue;
            const v = upstreamHeaders[name];
            if (v !== undefined) res.setHeader(name, v);
          }
          res.writeHead(statusCode);
          res.on('drain', () => controller.resume());
        },
        onResponseData(controller, chunk) {
          if (!res.write(chunk)) controller.pause();
        },
        onResponseEnd() {
          res.end();
          finish();
        },
        onResponseError: (_controller, err) => {
          if (isConnectFailure(err)) route.data.upstream.markDown(upstream, Date.now());
          if (res.headersSent) res.destroy();
          else if (!res.destroyed) writeProblem(res, isTimeout(err) ? 'upstream_timeout' : 'upstream_unavailable');
          finish();
        },
      };
      this.pool(upstream).dispatch(options, handler);
    });
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}


export interface FastPath {
  /** The public listener's handler for everything outside server.prefix (and GET/HEAD /verify). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  isVerify(req: IncomingMessage): boolean;
}

/** Proxied requests and GET/HEAD {prefix}/verify, answered without Fastify, one log line each. */
export function createFastPath(deps: FastPathDeps, proxy: ProxyHandler, requestLog: RequestLogger): FastPath {
  const verifyPath = `${deps.ctx.prefix}/verify`;
  const isVerify = (req: IncomingMessage): boolean => {
    const url = req.url ?? '';
    return (req.method === 'GET' || req.method === 'HEAD') && url.startsWith(verifyPath) && (url.length === verifyPath.length || url.charCodeAt(verifyPath.length) === 63 /* ? */);
  };
  const failed = (res: ServerResponse, err: unknown): RequestRecord => {
    if (err instanceof GatewayError) writeProblem(res, err.code, err.detail, err.headers);
    else { deps.log.error({ err }, 'forward-auth failed'); writeProblem(res, 'internal'); }
    return { route: '-', authenticator: undefined, user: undefined };
  };
  return {
    isVerify,
    handle(req, res) {
      const startedAt = performance.now();
      const ip = req.socket.remoteAddress; // the socket is gone once the response has ended
      const done = isVerify(req) ? answerVerify(deps, req, res).catch((err: unknown) => failed(res, err)) : proxy.handle(req, res);
      void done.then((rec) => {
        const url = req.url ?? '';
        const q = url.indexOf('?');
        requestLog({ method: req.method ?? '', path: q === -1 ? url : url.slice(0, q), route: rec.route, authenticator: rec.authenticator, user: rec.user, status: res.statusCode, ms: performance.now() - startedAt, ip: rec.ip ?? ip });
      });
    },
  };
}
