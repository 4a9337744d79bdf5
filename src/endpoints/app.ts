// The Fastify app for everything under server.prefix: the gateway's own endpoints and pages
// (SPEC 6). Proxied requests never come here (proxy/handler.ts), except a URL that looks like
// the prefix but is no endpoint, which is handed back to the fast path untouched.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type pino from 'pino';
import type { GatewayContext } from '../context.js';
import { GatewayError, sendProblem, type ErrorCode } from '../errors.js';
import type { RequestLogger } from '../ops/request-log.js';
import { runChain } from '../pipeline/chain.js';
import { NOT_MINE, type Authenticator, type AuthOutcome, type AuthRequest } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';
import type { Trust } from '../util/trust.js';
import { ENDPOINT_PLUGINS } from './index.js';

export interface EndpointsDeps {
  log: pino.Logger;
  trust: Trust;
  bodyLimit: number;
  /** Session cookie, gateway token, gateway JWT: who calls /me, /tokens, … */
  callerChain: readonly Authenticator[];
  authenticators: ReadonlyMap<string, Authenticator>;
  closeHooks: (() => Promise<void> | void)[];
  requestLog: RequestLogger;
  /** The fast path, for prefix-looking URLs that are no endpoint. */
  handOver: (req: IncomingMessage, res: ServerResponse) => void;
}

export interface EndpointsApp {
  readonly app: FastifyInstance;
  readonly runtime: Runtime;
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
}

export async function createEndpointsApp(ctx: GatewayContext, deps: EndpointsDeps): Promise<EndpointsApp> {
  const { log, bodyLimit } = deps;
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const app = Fastify({
    loggerInstance: log,
    // One log line per request is written by the onResponse hook below, not by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is the gateway's logger itself: Fastify's default makes a pino child per
    // request for a reqId binding that only the rare per-request warning would carry.
    childLoggerFactory: (logger) => logger,
    trustProxy: deps.trust.fastifyTrust,
    bodyLimit,
    requestIdHeader: false,
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 2048, caseSensitive: true },
    // Router-level failures (a malformed percent-encoding, a bad content type) are problem+json too.
    frameworkErrors: (err, _request, reply) => {
      const code = (err as { code?: string }).code;
      if (code === 'FST_ERR_BAD_URL') return sendProblem(reply, 'bad_path');
      if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendProblem(reply, 'unsupported_media_type');
      return sendProblem(reply, 'bad_request');
    },
    serverFactory: (h) => {
      handler = h;
      return createServer();
    },
  });

  const toAuthRequest = (request: FastifyRequest, reply?: FastifyReply): AuthRequest => ({
    method: request.method,
    path: request.url.split('?')[0] ?? '/',
    query: '',
    host: request.host,
    headers: request.headers,
    ip: request.ip,
    peer: request.socket.remoteAddress,
    cookies: request.cookies ?? {},
    log: request.log,
    clearCookie: reply ? (name: string) => { reply.clearCookie(name, { path: '/' }); } : undefined,
  });

  const runtime: Runtime = {
    ctx,
    authenticators: deps.authenticators,
    toAuthRequest: (request) => toAuthRequest(request),
    async authenticateCaller(request): Promise<AuthOutcome> {
      const r = await runChain(deps.callerChain, toAuthRequest(request));
      if (r.kind === 'identity') return { kind: 'identity', identity: r.identity };
      if (r.kind === 'reject') return r.rejection;
      return NOT_MINE;
    },
    onClose: (fn) => { deps.closeHooks.push(fn); },
  };

  // Errors the framework raises itself (bad URL, body too large, bad JSON) become problem+json.
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err instanceof GatewayError) return sendProblem(reply, err.code, err.detail, err.headers);
    const status = err.statusCode ?? 500;
    let code: ErrorCode = 'internal';
    if (status === 413) code = 'payload_too_large';
    else if (status === 415) code = 'unsupported_media_type';
    else if (status === 404) code = 'not_found';
    else if (status === 405) code = 'method_not_allowed';
    else if (status === 431) code = 'headers_too_large';
    else if (status === 503) code = 'store_unavailable';
    else if (status >= 400 && status < 500) code = 'bad_request';
    if (code === 'internal') request.log.error({ err }, 'unhandled error');
    return sendProblem(reply, code);
  });
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, 'no_route'));

  await app.register(fastifyCookie);
  await app.register(async (scope) => {
    await scope.register(fastifyFormbody, { bodyLimit });
    for (const plugin of ENDPOINT_PLUGINS) await scope.register(async (p) => plugin(p, runtime), { prefix: ctx.prefix });
  });

  // `/.auth/../admin/x` is no endpoint but normalizes to a proxied path: back to the fast path
  // with its body unread.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    const handOver = (request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      deps.handOver(request.raw, reply.raw);
    };
    scope.all('/*', handOver);
    scope.all('/', handOver);
  });

  app.addHook('onResponse', (request, reply, done) => {
    deps.requestLog({ method: request.method, path: (request.raw.url ?? '').split('?')[0] ?? '', route: '-', authenticator: undefined, user: undefined, status: reply.statusCode, ms: reply.elapsedTime, ip: request.ip });
    done();
  });

  await app.ready();
  if (!handler) throw new Error('server factory was not called');
  return { app: app as unknown as FastifyInstance, runtime, handler };
}
