// The fast path (issue 12): a proxied request never enters Fastify. The public listener's raw
// handler normalizes, matches, runs the chain and forwards with undici's Pool.dispatch straight
// onto the client response: bodies stream both ways with backpressure, a client that goes away
// aborts the upstream request, upstream failures become 502/504 problem+json.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { answerVerify } from '../endpoints/verify.js';
import { GatewayError } from '../errors.js';
import type { RequestLogger } from '../ops/request-log.js';
import { REFUSED_METHODS, type Decision, type Route } from '../pipeline/decide.js';
import type { Identity } from '../pipeline/types.js';
import { encodePath } from '../routing/normalize.js';
import { clientInfo, isPublicHost, type ClientInfo } from './client-info.js';
import { answerPreflight, applyCorsToUpstreamHeaders, corsResponseHeaders, preflightMethod } from './cors.js';
import { connectionNamesFraming, forwardContextFor, hasAmbiguousCredentials, isPlainConnection, rewriteForwardHeaders, stripQueryParams } from './forward-headers.js';
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

/** One proxied request on its way through the handler. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly rec: RequestRecord;
  readonly done: (rec: RequestRecord) => void;
  readonly fail: (err: unknown) => void;
  readonly method: string;
  readonly rawUrl: string;
  /** The normalized path that was matched, and the raw query. */
  readonly path: string;
  readonly query: string;
  readonly client: ClientInfo;
  readonly route: Route;
  readonly anonymous: boolean;
  readonly corsRequest: IncomingHttpHeaders | undefined;
  body: Buffer | undefined;
}

/** Response headers that describe the upstream connection, not the response (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

const NONE: readonly string[] = [];

/** The client's `Connection` tokens: removed before the gateway sets its own headers (THREATS 74). */
function dropConnectionListed(headers: IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (typeof connection !== 'string' || isPlainConnection(connection)) return;
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && headers[name] !== undefined) headers[name] = undefined;
  }
}

export class ProxyHandler {
  /** One undici Pool per upstream origin, for the life of this gateway generation. */
  private readonly pools = new Map<string, Pool>();

  /** publicUrl's host, lower case: a request for it comes back to a relative URL after sign-in. */
  private readonly publicHost: string;

  constructor(
    private readonly deps: FastPathDeps,
    private readonly opts: ProxyOptions,
  ) {
    this.publicHost = deps.ctx.publicUrl.host.toLowerCase();
  }

  /**
   * Handles one proxied request and calls `done` once with what the log line records, when the
   * response has ended (or failed). Never throws. Synchronous up to the upstream dispatch while
   * nothing needs waiting for (a warm credential): no promise on the hot path.
   */
  handle(req: IncomingMessage, res: ServerResponse, done: (rec: RequestRecord) => void): void {
    const rec: RequestRecord = { route: '-', authenticator: undefined, user: undefined };
    // Reported once, even if something throws after the answer was written.
    let reported = false;
    const report = (r: RequestRecord): void => {
      if (reported) return;
      reported = true;
      done(r);
    };
    const fail = (err: unknown): void => {
      if (err instanceof GatewayError) writeProblem(res, err.code, err.detail, err.headers);
      else {
        this.deps.log.error({ err }, 'proxy request failed');
        writeProblem(res, 'internal');
      }
      report(rec);
    };
    try {
      this.start(req, res, rec, report, fail);
    } catch (err) {
      fail(err);
    }
  }

  /** Checks the request, matches its route, and hands it to the chain (after a body read, if one is needed). */
  private start(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, done: (rec: RequestRecord) => void, fail: (err: unknown) => void): void {
    const { decider } = this.deps;
    const answered = (_written?: void): void => done(rec);
    const rawUrl = req.url ?? '/';
    const target = decider.normalize(rawUrl);
    if (!target.ok) return answered(writeProblem(res, 'bad_path', `The request path is not acceptable: ${target.reason}.`));
    const method = req.method ?? 'GET';
    if (REFUSED_METHODS.has(method)) return answered(writeProblem(res, 'method_not_allowed'));
    // Connection: Content-Length would unframe the body on the way upstream (THREATS 75).
    if (connectionNamesFraming(req.headers.connection)) return answered(writeProblem(res, 'bad_request', 'The Connection header names a framing header.', { connection: 'close' }));
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
      return answered();
    }
    if (corsAnswer?.kind === 'refuse') return answered(writeProblem(res, 'forbidden', 'This cross-origin request is not allowed.', corsAnswer.headers));
    const route = corsAnswer?.kind === 'passthrough' ? corsRoute : decider.match(client.host, target.path, method);
    if (route === undefined) return answered(writeProblem(res, 'no_route'));
    rec.route = route.name;
    const data = route.data;
    const x: Exchange = {
      req, res, rec, done, fail, method, rawUrl, path: target.path, query: target.query, client, route,
      // A passthrough preflight goes to the upstream unauthenticated.
      anonymous: data.anonymous || corsAnswer !== undefined,
      // The Origin the response's CORS headers answer (read before the header rewrite reuses req.headers).
      corsRequest: data.cors === undefined ? undefined : { origin: req.headers.origin },
      body: undefined,
    };
    if (!x.anonymous && hasAmbiguousCredentials(req.rawHeaders, req.headers, target.query)) return answered(writeProblem(res, 'bad_request', 'The request carries more than one credential.'));
    if (data.needsBody && method !== 'GET' && method !== 'HEAD') {
      readBody(req, this.deps.bodyLimit).then((body) => {
        x.body = body;
        this.authenticate(x);
      }).catch(fail);
      return;
    }
    this.authenticate(x);
  }

  /** Runs the route's chain (synchronously when it can) and forwards what it allows. */
  private authenticate(x: Exchange): void {
    if (x.anonymous) {
      x.rec.authenticator = 'anonymous';
      this.deps.metrics.authOutcomes.inc('anonymous', 'ok');
      return this.forwardAllowed(x, undefined);
    }
    const { client, req } = x;
    const authReq = rawAuthRequest(req, x.res, { method: x.method, path: x.path, query: x.query, host: client.host, client, peer: client.peer, body: x.body }, this.deps.log);
    const host = client.host;
    const originalUrl = isPublicHost(host, this.publicHost) ? x.rawUrl : `${client.protocol}://${host}${x.rawUrl}`;
    const decision = this.deps.decider.decide(x.route, authReq, originalUrl);
    if (decision instanceof Promise) {
      decision.then((d) => this.decided(x, d)).catch(x.fail);
      return;
    }
    this.decided(x, decision);
  }

  private decided(x: Exchange, decision: Decision): void {
    const { rec, res } = x;
    rec.authenticator = decision.authenticator;
    rec.user = decision.identity?.user;
    if (decision.kind === 'deny') {
      this.deps.metrics.authOutcomes.inc(decision.authenticator ?? 'none', decision.code);
      if (decision.redirect) writeRedirect(res, decision.redirect);
      else {
        // On a `cors` route the caller's script may read the 401/403.
        const cors = x.route.data.cors && x.corsRequest && corsResponseHeaders(x.route.data.cors, x.corsRequest);
        writeProblem(res, decision.code, decision.detail, cors ? { ...decision.headers, ...cors } : decision.headers);
      }
      return x.done(rec);
    }
    this.deps.metrics.authOutcomes.inc(decision.authenticator, 'ok');
    this.forwardAllowed(x, decision.identity);
  }

  private forwardAllowed(x: Exchange, identity: Identity | undefined): void {
    const { req, route, method, body } = x;
    const data = route.data;
    const upstream = data.upstream.pick(Date.now());
    const query = data.passCredentials ? x.query : stripQueryParams(x.query, data.credentialQueryParams);
    const path = upstream.basePath + encodePath(this.deps.decider.upstreamPath(route, x.path)) + (query === '' ? '' : `?${query}`);
    // GET and HEAD bodies are not forwarded (as before with reply-from); other methods stream
    // theirs. Decided before the header rewrite removes Transfer-Encoding.
    const streamBody = body === undefined && method !== 'GET' && method !== 'HEAD' && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
    // The chain has run: the request's own header object becomes the forwarded one (no copy).
    const headers = req.headers;
    dropConnectionListed(headers);
    rewriteForwardHeaders(headers, forwardContextFor(route, x.client, identity, this.deps), this.deps.identityHeaders);
    headers.host = upstream.host;
    if (body !== undefined) headers['content-length'] = String(body.length);
    this.forward(x, upstream, path, headers, streamBody);
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

  /** Streams the request upstream and the response back; calls `x.done` when the response is done. */
  private forward(x: Exchange, upstream: UpstreamTarget, path: string, headers: IncomingHttpHeaders, streamBody: boolean): void {
    const { req, res, route, method, body, corsRequest } = x;
    const startedAt = performance.now();
    const { metrics } = this.deps;
    const timeout = route.data.timeoutMs;
    if (body === undefined && !streamBody && headers['content-length'] !== undefined) headers['content-length'] = undefined;
    const options: Dispatcher.DispatchOptions = {
      path,
      method: method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string | string[]>,
      body: body ?? (streamBody ? req : null),
    };
    if (timeout !== undefined) { options.headersTimeout = timeout; options.bodyTimeout = timeout; }
    let controllerRef: Dispatcher.DispatchController | undefined;
    let finished = false;
    // Not removed when the exchange ends (the response object ends with it): the flag keeps a
    // late 'close' from aborting anything. A response closes once ('on' saves once's wrapper).
    res.on('close', () => {
      if (!finished && !res.writableFinished) controllerRef?.abort(new Error('client closed the connection'));
    });
    const finish = (): void => { finished = true; x.done(x.rec); };
    let drainHooked = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) { controllerRef = controller; },
      onResponseStart(controller, statusCode, upstreamHeaders) {
        if (statusCode < 200) return; // 1xx from the upstream are not relayed
        metrics.upstreamLatency.observe(route.name, (performance.now() - startedAt) / 1000);
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
      },
      onResponseData(controller, chunk) {
        if (res.write(chunk)) return;
        // Backpressure: pause the upstream until the client has taken what is buffered.
        controller.pause();
        if (!drainHooked) {
          drainHooked = true;
          res.on('drain', () => controller.resume());
        }
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
      const logged = (rec: RequestRecord): void => {
        const method = req.method ?? '';
        requestLog.count(rec.route, method, res.statusCode);
        if (requestLog.lineWanted()) requestLog.record(method, req.url ?? '', rec.route, rec.authenticator, rec.user, res.statusCode, performance.now() - startedAt, rec.ip ?? ip);
      };
      if (!isVerify(req)) return proxy.handle(req, res, logged);
      let answer;
      try {
        answer = answerVerify(deps, req, res);
      } catch (err) {
        return logged(failed(res, err));
      }
      if (answer instanceof Promise) void answer.catch((err: unknown) => failed(res, err)).then(logged);
      else logged(answer);
    },
  };
}
