// The proxy as it was before the fast path (Fastify + @fastify/reply-from), kept verbatim as the
// oracle of test/proxy/fast-path.property.test.ts (issue 12): the new path must decide, forward
// and rewrite exactly as this did. Remove once the fast path has passed in production.
// Builds one gateway (public app + admin app) from a loaded config. A reload builds a new one
// and swaps it in (see gateway.ts); nothing here listens on a socket.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import fastifyReplyFrom from '@fastify/reply-from';
import type pino from 'pino';
import type { LoadedConfig } from '../../src/config/load.js';
import type { AuthenticatorConfig } from '../../src/config/schema.js';
import type { GatewayContext } from '../../src/context.js';
import { createUserDirectory } from '../../src/credentials/users.js';
import { createLockout } from '../../src/credentials/lockout.js';
import { loadSigningKeys } from '../../src/credentials/keys.js';
import { ENDPOINT_PLUGINS } from '../../src/endpoints/index.js';
import { GatewayError, sendProblem, type ErrorCode } from '../../src/errors.js';
import { Metrics } from '../../src/ops/metrics.js';
import { createAnonymousAuthenticator } from '../../src/pipeline/authenticators/anonymous.js';
import { compileRequirements, runChain } from '../../src/pipeline/chain.js';
import { Decider, REFUSED_METHODS, type Decision, type RouteData } from '../../src/pipeline/decide.js';
import { IdentityHeaders } from '../../src/pipeline/identity.js';
import { AUTHENTICATOR_FACTORIES } from '../../src/pipeline/registry.js';
import { NOT_MINE, type Authenticator, type AuthOutcome, type AuthRequest, type Identity } from '../../src/pipeline/types.js';
import { clientInfo, normalizeHost, type ClientInfo } from '../../src/proxy/client-info.js';
import { connectionNamesFraming, hasAmbiguousCredentials, rewriteForwardHeaders, stripQueryParams } from '../../src/proxy/forward-headers.js';
import { UpstreamPool, isConnectFailure, isTimeout, type UpstreamTarget } from '../../src/proxy/upstream.js';
import { handleUpgrade } from '../../src/proxy/websocket.js';
import { encodePath } from '../../src/routing/normalize.js';
import { RouteTable, compileRoute } from '../../src/routing/table.js';
import type { Runtime } from '../../src/runtime.js';
import { createStore } from '../../src/store/index.js';
import { instrumentStore } from '../../src/store/instrumented.js';
import { durationMs } from '../../src/util/duration.js';
import { isTrustedAddress, compileTrust } from '../../src/util/trust.js';
import { AssertionSigner } from '../../src/pipeline/assertion.js';

type ReplyFromOptions = NonNullable<Parameters<FastifyReply['from']>[1]>;
type ReplyFromRewrite = NonNullable<ReplyFromOptions['rewriteRequestHeaders']>;
type ReplyFromOnError = NonNullable<ReplyFromOptions['onError']>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Per-request proxy state: set by the catch-all handler, read by the header rewrite. */
    agForward: ForwardState | null;
  }
}

interface ForwardState {
  identity: Identity | undefined;
  data: RouteData;
  authenticator: string;
  startedAt: number;
  /** The upstream target chosen for this request (marked down on a connection failure). */
  target?: UpstreamTarget | undefined;
  /** Address, protocol and host as the gateway believes them (proxy/client-info.ts). */
  client?: ClientInfo | undefined;
  /** The query string the upstream receives (consumed credentials removed). */
  query?: string | undefined;
}

export interface BuiltGateway {
  readonly ctx: GatewayContext;
  readonly runtime: Runtime;
  readonly app: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly metrics: Metrics;
  /** HTTP request listener for the public server. */
  handleRequest(req: IncomingMessage, res: ServerResponse): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  handleAdminRequest(req: IncomingMessage, res: ServerResponse): void;
  readiness(): Promise<{ ok: boolean; body: { status: string; checks: Record<string, string> } }>;
  close(): Promise<void>;
}

export interface BuildOptions {
  logger: pino.Logger;
  /** The public URL when the config has none (e.g. the real port after listening on port 0). */
  defaultPublicUrl: string;
}

const SESSION_COOKIE_DEFAULT = 'authgate_session';

/** The services behind one loaded config. */
export async function buildContext(loaded: LoadedConfig, opts: BuildOptions): Promise<{ ctx: GatewayContext; close: () => Promise<void> }> {
  const cfg = loaded.config;
  const log = opts.logger;
  const publicUrl = new URL(cfg.server?.publicUrl ?? opts.defaultPublicUrl);
  const prefix = cfg.server?.prefix ?? '/.auth';
  const metrics = new Metrics();
  const store = instrumentStore(await createStore(cfg.store, { configDir: loaded.dir, log }), metrics);
  const closers: (() => Promise<void>)[] = [() => store.close()];
  try {
    const users = await createUserDirectory(cfg, { configDir: loaded.dir, log, store });
    closers.unshift(() => users.close());
    const lockout = createLockout(store, cfg.login?.lockout);
    const signing = await loadSigningKeys(cfg.signing, { configDir: loaded.dir, log });
    const ctx: GatewayContext = { config: cfg, configDir: loaded.dir, publicUrl, prefix, store, users, lockout, signing, log, cacheKey: randomBytes(32), metrics };
    return {
      ctx,
      close: async () => {
        for (const c of closers) await c().catch((err: unknown) => log.warn({ err }, 'close failed'));
      },
    };
  } catch (err) {
    for (const c of closers) await c().catch(() => undefined);
    throw err;
  }
}

async function createAuthenticators(ctx: GatewayContext): Promise<Map<string, Authenticator>> {
  const map = new Map<string, Authenticator>();
  map.set('anonymous', createAnonymousAuthenticator('anonymous'));
  for (const [name, cfg] of Object.entries(ctx.config.authenticators ?? {})) {
    const factory = AUTHENTICATOR_FACTORIES[cfg.type];
    if (!factory) throw new Error(`authenticators.${name}: type '${cfg.type}' is not available`);
    map.set(name, await factory(name, cfg, ctx));
  }
  return map;
}

/** The caller check for the gateway's own endpoints: session cookie, gateway token, gateway JWT. */
async function createCallerChain(ctx: GatewayContext, configured: Map<string, Authenticator>): Promise<Authenticator[]> {
  const wanted: AuthenticatorConfig[] = [{ type: 'session' }, { type: 'token' }, { type: 'jwt', issuer: 'self' }];
  const chain: Authenticator[] = [];
  for (const cfg of wanted) {
    const existing = [...configured.values()].find((a) => a.type === cfg.type && (cfg.type !== 'jwt' || (ctx.config.authenticators?.[a.name] as { issuer?: string } | undefined)?.issuer === 'self'));
    if (existing) { chain.push(existing); continue; }
    const factory = AUTHENTICATOR_FACTORIES[cfg.type];
    if (factory) chain.push(await factory(`_caller_${cfg.type}`, cfg, ctx));
  }
  return chain;
}

function compileRoutes(ctx: GatewayContext, authenticators: Map<string, Authenticator>): RouteTable<RouteData> {
  const cfg = ctx.config;
  const connectTimeout = durationMs(cfg.server?.timeouts?.connect, '5s');
  return new RouteTable(
    cfg.routes.map((r) => {
      const anonymous = r.auth === 'anonymous';
      const chain = anonymous ? [] : (r.auth as string[]).map((n) => {
        const a = authenticators.get(n);
        if (!a) throw new Error(`routes.${r.name}.auth: unknown authenticator '${n}'`);
        return a;
      });
      const oidc = chain.filter((a) => a.type === 'oidc');
      const credentialHeaders: string[] = [];
      const credentialQueryParams: string[] = [];
      for (const a of chain) {
        const ac = cfg.authenticators?.[a.name];
        if (ac !== undefined && ac.type === 'apikey') {
          credentialHeaders.push((ac.header ?? 'X-API-Key').toLowerCase());
          if (ac.queryParam !== undefined) credentialQueryParams.push(ac.queryParam);
        }
      }
      const methods = r.match.methods;
      let config = methods && methods.includes('GET') && !methods.includes('HEAD') ? { ...r, match: { ...r.match, methods: [...methods, 'HEAD'] } } : r;
      // server.paths.caseInsensitive: patterns compiled lower-cased; Decider.match lower-cases the path.
      if (cfg.server?.paths?.caseInsensitive === true) config = { ...config, match: { ...config.match, path: config.match.path.toLowerCase() } };
      const data: RouteData = {
        chain,
        anonymous: anonymous || (chain.length > 0 && chain.every((a) => a.type === 'anonymous')),
        needsBody: chain.some((a) => a.needsBody === true),
        requirements: compileRequirements(r.require),
        login: r.onUnauthenticated === 'login',
        loginProvider: oidc.length === 1 ? oidc[0]?.name : undefined,
        upstream: new UpstreamPool(r.upstream, Math.max(connectTimeout, 10_000)),
        stripPath: r.stripPath,
        passCredentials: r.passCredentials === true,
        credentialHeaders,
        credentialQueryParams,
        websocket: r.websocket === true,
        timeoutMs: r.timeout !== undefined ? durationMs(r.timeout) : undefined,
        config: r,
      };
      return compileRoute(config, data);
    }),
  );
}

function problemForDecision(reply: FastifyReply, d: Extract<Decision, { kind: 'deny' }>): FastifyReply {
  if (d.redirect) return reply.code(302).header('location', d.redirect).header('cache-control', 'no-store').send();
  return sendProblem(reply, d.code, d.detail, d.headers);
}

/** Reads a body the chain must see (HMAC signatures), bounded. */
async function readBody(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new GatewayError('payload_too_large', 'The request body is too large.');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

type DescribedRequest = { method: string; uri: string; host: string | undefined; proto: string | undefined };

/**
 * The original request as the proxy describes it to {prefix}/verify (SPEC 6): exactly one of
 * the two header sets, with a method. A proxy overwrites only the set it uses and passes the
 * client's own headers on, so a request carrying members of both sets (or no method) is refused:
 * otherwise a client adds `X-Forwarded-Uri: /public/x` beside nginx's `X-Original-URL`, or drops
 * the method to turn a cross-site POST into a GET (issue 9 item 2). A string is the refusal.
 */
function describedRequest(h: IncomingHttpHeaders): DescribedRequest | string {
  const one = (v: string | string[] | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const forwarded = h['x-forwarded-method'] !== undefined || h['x-forwarded-uri'] !== undefined || h['x-forwarded-host'] !== undefined || h['x-forwarded-proto'] !== undefined;
  const original = h['x-original-url'] !== undefined || h['x-original-method'] !== undefined;
  if (forwarded && original) return 'The original request is described by both X-Forwarded-* and X-Original-* headers.';
  const method = (forwarded ? one(h['x-forwarded-method']) : one(h['x-original-method']))?.toUpperCase();
  if (method === undefined || !/^[A-Z]+$/.test(method) || REFUSED_METHODS.has(method)) return 'The original request is not described.';
  if (forwarded) {
    const uri = one(h['x-forwarded-uri']);
    const host = one(h['x-forwarded-host']);
    if (uri === undefined || host === undefined) return 'The original request is not described.';
    return { method, uri, host, proto: one(h['x-forwarded-proto']) };
  }
  const url = one(h['x-original-url']);
  if (url === undefined) return 'The original request is not described.';
  if (!/^https?:\/\//i.test(url)) return { method, uri: url, host: undefined, proto: undefined };
  try { new URL(url); } catch { return 'X-Original-URL is malformed.'; }
  // Host and path come from the same reading: a plain authority only (no userinfo, no '?'/'#' before the path).
  const start = url.indexOf('//') + 2;
  const slash = url.indexOf('/', start);
  const authority = slash === -1 ? url.slice(start) : url.slice(start, slash);
  if (!/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$/.test(authority)) return 'X-Original-URL is malformed.';
  return { method, uri: slash === -1 ? '/' : url.slice(slash), host: authority, proto: url.slice(0, url.indexOf(':')).toLowerCase() };
}

export async function buildGateway(loaded: LoadedConfig, opts: BuildOptions): Promise<BuiltGateway> {
  const { ctx, close: closeContext } = await buildContext(loaded, opts);
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    return await assemble(ctx, loaded, opts, cleanups, closeContext);
  } catch (err) {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => undefined);
    await closeContext();
    throw err;
  }
}

async function assemble(
  ctx: GatewayContext,
  loaded: LoadedConfig,
  opts: BuildOptions,
  cleanups: (() => Promise<void> | void)[],
  closeContext: () => Promise<void>,
): Promise<BuiltGateway> {
  const cfg = loaded.config;
  const log = opts.logger;
  const metrics = ctx.metrics ?? new Metrics();
  const authenticators = await createAuthenticators(ctx);
  cleanups.push(async () => { for (const a of authenticators.values()) await a.close?.(); });
  const callerChain = await createCallerChain(ctx, authenticators);
  cleanups.push(async () => { for (const a of callerChain) if (a.name.startsWith('_caller_')) await a.close?.(); });
  const table = compileRoutes(ctx, authenticators);
  const decider = new Decider(ctx, table);
  const identityHeaders = new IdentityHeaders(cfg.identity, cfg.identity?.assertion !== undefined);
  const assertion = cfg.identity?.assertion ? new AssertionSigner(ctx, durationMs(cfg.identity.assertion.ttl, '60s')) : undefined;
  const trust = compileTrust(cfg.server?.trustedProxies ?? []);
  const sessionCookie = cfg.login?.session?.cookie ?? SESSION_COOKIE_DEFAULT;
  const bodyLimit = cfg.server?.bodyLimit ?? 1024 * 1024;
  const upstreamTimeout = durationMs(cfg.server?.timeouts?.upstream, '30s');
  const connectTimeout = durationMs(cfg.server?.timeouts?.connect, '5s');

  let publicHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const app = Fastify({
    loggerInstance: log,
    // One log line per request is written by the onResponse hook below, not by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is the gateway's logger itself: Fastify's default makes a pino child per
    // request (about 0.6 µs plus garbage, redaction included) for a reqId binding that only the
    // rare per-request warning would carry.
    childLoggerFactory: (logger) => logger,
    trustProxy: trust.fastifyTrust,
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
    serverFactory: (handler) => {
      publicHandler = handler;
      return createServer();
    },
  });
  app.decorateRequest('agForward', null);

  const toAuthRequest = (request: FastifyRequest, path?: string, query?: string, body?: Buffer, reply?: FastifyReply, client?: ClientInfo): AuthRequest => ({
    method: request.method,
    path: path ?? request.url.split('?')[0] ?? '/',
    query: query ?? '',
    host: client?.host ?? request.host,
    headers: request.headers,
    ip: client?.ip ?? request.ip,
    peer: request.socket.remoteAddress,
    cookies: request.cookies ?? {},
    body,
    log: request.log,
    clearCookie: reply ? (name: string) => { reply.clearCookie(name, { path: '/' }); } : undefined,
  });

  const closeHooks: (() => Promise<void> | void)[] = [];
  const runtime: Runtime = {
    ctx,
    authenticators,
    toAuthRequest: (request) => toAuthRequest(request),
    async authenticateCaller(request): Promise<AuthOutcome> {
      const r = await runChain(callerChain, toAuthRequest(request));
      if (r.kind === 'identity') return { kind: 'identity', identity: r.identity };
      if (r.kind === 'reject') return r.rejection;
      return NOT_MINE;
    },
    onClose: (fn) => { closeHooks.push(fn); },
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

  // The gateway's own endpoints: JSON and form bodies.
  await app.register(async (scope) => {
    await scope.register(fastifyFormbody, { bodyLimit });
    for (const plugin of ENDPOINT_PLUGINS) await scope.register(async (p) => plugin(p, runtime), { prefix: ctx.prefix });
    scope.get(`${ctx.prefix}/verify`, (request, reply) => forwardAuth(request, reply));
  });

  // Everything else is proxied: bodies stream through untouched.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    await scope.register(fastifyReplyFrom as unknown as FastifyPluginAsync<Record<string, unknown>>, {
      disableRequestLogging: true,
      // reply-from < 12.7 turns TLS verification off unless told otherwise (THREATS 79).
      undici: { connections: 256, pipelining: 1, keepAliveTimeout: 30_000, connectTimeout, headersTimeout: upstreamTimeout, bodyTimeout: upstreamTimeout, tls: { rejectUnauthorized: true } },
    });
    scope.all('/*', proxyHandler);
    scope.all('/', proxyHandler);
  });

  const isTrustedPeer = (request: FastifyRequest): boolean => trust.has && isTrustedAddress(trust, request.socket.remoteAddress);

  function originalUrlFor(client: ClientInfo, rawUrl: string): string {
    const host = client.host;
    if (host.toLowerCase() === ctx.publicUrl.host.toLowerCase()) return rawUrl;
    return `${client.protocol}://${host}${rawUrl}`;
  }

  async function proxyHandler(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const rawUrl = request.raw.url ?? '/';
    const target = decider.normalize(rawUrl);
    if (!target.ok) return sendProblem(reply, 'bad_path', `The request path is not acceptable: ${target.reason}.`);
    const method = request.method;
    if (REFUSED_METHODS.has(method)) return sendProblem(reply, 'method_not_allowed');
    // Connection: Content-Length would unframe the body on the way upstream (THREATS 75).
    if (connectionNamesFraming(request.headers.connection)) return sendProblem(reply.header('connection', 'close'), 'bad_request', 'The Connection header names a framing header.');
    const client = clientInfo(trust, request.raw);
    const route = decider.match(client.host, target.path, method);
    if (route === undefined) return sendProblem(reply, 'no_route');
    const data = route.data;
    if (!data.anonymous && hasAmbiguousCredentials(request.raw.rawHeaders, request.headers, target.query)) return sendProblem(reply, 'bad_request', 'The request carries more than one credential.');
    let body: Buffer | undefined;
    if (data.needsBody && method !== 'GET' && method !== 'HEAD' && request.body) {
      body = await readBody(request.body as NodeJS.ReadableStream, bodyLimit);
    }
    const authReq = toAuthRequest(request, target.path, target.query, body, reply, client);
    const decision = data.anonymous
      ? ({ kind: 'allow', route, identity: undefined, authenticator: 'anonymous' } as const)
      : await decider.decide(route, authReq, originalUrlFor(client, rawUrl));
    if (decision.kind === 'deny') {
      recordAuth(decision.authenticator ?? 'none', decision.code);
      request.agForward = { identity: decision.identity, data, authenticator: decision.authenticator ?? '-', startedAt: 0 };
      return problemForDecision(reply, decision);
    }
    recordAuth(decision.authenticator, 'ok');
    const upstream = data.upstream.pick(Date.now());
    const query = data.passCredentials ? target.query : stripQueryParams(target.query, data.credentialQueryParams);
    request.agForward = { identity: decision.identity, data, authenticator: decision.authenticator, startedAt: performance.now(), target: upstream, client, query };
    const path = encodePath(decider.upstreamPath(route, target.path));
    const url = upstream.origin + upstream.basePath + path;
    const opts = data.timeoutMs === undefined ? proxyOptions : { ...proxyOptions, timeout: data.timeoutMs };
    return reply.from(url, body === undefined ? opts : { ...opts, body, contentType: request.headers['content-type'] ?? 'application/octet-stream' });
  }

  // Built once: the per-request state they need travels on request.agForward.
  function onProxyError(reply: FastifyReply, { error }: { error: unknown }): void {
    const st = reply.request.agForward;
    if (st?.target && isConnectFailure(error)) st.data.upstream.markDown(st.target, Date.now());
    if (reply.sent) return;
    if (isTimeout(error)) sendProblem(reply, 'upstream_timeout');
    else sendProblem(reply, 'upstream_unavailable');
  }
  const proxyOptions: ReplyFromOptions = {
    // The query as decided for this request (byte for byte, minus consumed credentials).
    queryString: ((_search: string, _reqUrl: string, request: FastifyRequest) => request.agForward?.query ?? '') as unknown as ReplyFromOptions['queryString'],
    rewriteRequestHeaders: rewriteRequestHeaders as unknown as ReplyFromRewrite,
    onError: onProxyError as unknown as ReplyFromOnError,
    onResponse: (req, rep, res) => {
      const st = req.agForward;
      if (st) metrics.upstreamLatency.observe(st.data.config.name, (performance.now() - st.startedAt) / 1000);
      return rep.send(res.stream);
    },
  };

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const st = request.agForward as ForwardState;
    const identity = st.identity;
    const client = st.client ?? clientInfo(trust, request.raw);
    return rewriteForwardHeaders(headers, {
      identity,
      clientIp: client.ip,
      peer: client.peer,
      trustedPeer: client.trusted,
      protocol: client.protocol,
      host: client.host,
      stripCredentials: !st.data.passCredentials,
      credentialHeaders: st.data.credentialHeaders,
      sessionCookie,
      assertion: identity && assertion ? assertion.assertionFor(identity, st.data.config.name) : undefined,
    }, identityHeaders);
  }

  /** GET {prefix}/verify: forward-auth for nginx auth_request / Traefik / Caddy (SPEC 6). */
  async function forwardAuth(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    reply.header('cache-control', 'no-store');
    // Only a configured proxy may describe the original request (THREATS 81).
    if (!isTrustedPeer(request)) return sendProblem(reply, 'forbidden', 'Forward-auth is only answered to trusted proxies.');
    const h = request.headers;
    const described = describedRequest(h);
    if (typeof described === 'string') return sendProblem(reply, 'bad_request', described);
    const { method, uri, proto } = described;
    const client = clientInfo(trust, request.raw);
    const host = normalizeHost(described.host ?? h.host ?? '');
    if (host === '') return sendProblem(reply, 'bad_request', 'The original request is not described.');
    const target = decider.normalize(uri);
    if (!target.ok) return sendProblem(reply, 'bad_path');
    const route = decider.match(host, target.path, method);
    if (route === undefined) return sendProblem(reply, 'no_route');
    if (!route.data.anonymous && hasAmbiguousCredentials(request.raw.rawHeaders, h, target.query)) return sendProblem(reply, 'bad_request', 'The request carries more than one credential.');
    const authReq: AuthRequest = { method, path: target.path, query: target.query, host, headers: h, ip: client.ip, peer: client.ip, cookies: request.cookies ?? {}, log: request.log, clearCookie: (name) => { reply.clearCookie(name, { path: '/' }); } };
    const originalUrl = host.toLowerCase() === ctx.publicUrl.host.toLowerCase() ? uri : `${proto === 'https' ? 'https' : 'http'}://${host}${uri}`;
    const decision = route.data.anonymous ? ({ kind: 'allow', route, identity: undefined, authenticator: 'anonymous' } as const) : await decider.decide(route, authReq, originalUrl);
    if (decision.kind === 'deny') {
      recordAuth(decision.authenticator ?? 'none', decision.code);
      return problemForDecision(reply, decision);
    }
    recordAuth(decision.authenticator, 'ok');
    if (decision.identity) {
      const out: Record<string, string> = {};
      identityHeaders.apply(out, decision.identity);
      if (assertion) out[identityHeaders.assertionHeader as string] = assertion.assertionFor(decision.identity, route.name);
      for (const [k, v] of Object.entries(out)) reply.header(k, v);
    }
    return reply.code(200).send();
  }

  function recordAuth(authenticator: string, result: string): void {
    metrics.authOutcomes.inc(authenticator, result);
  }

  // The per-request line has a fixed set of fields, none of them a secret, so it skips the
  // logger's redaction (about 4.8 µs per line with REDACT_PATHS' wildcards, measured). The level
  // check stays on the gateway's logger; this child is only the writer.
  const requestLine = log.child({}, { level: 'trace', redact: { paths: [] } });
  app.addHook('onResponse', (request, reply, done) => {
    const st = request.agForward;
    const route = st ? st.data.config.name : '-';
    const status = reply.statusCode;
    metrics.requests.inc(route, request.method, String(status));
    if (log.isLevelEnabled('info')) {
      requestLine.info({
        method: request.method,
        path: (request.raw.url ?? '').split('?')[0]?.slice(0, 512),
        route,
        authenticator: st?.authenticator,
        user: st?.identity?.user,
        status,
        ms: Math.round(reply.elapsedTime * 100) / 100,
        ip: request.ip,
      }, 'request');
    }
    done();
  });

  // Admin listener: health, readiness, metrics (never on the public listener).
  let adminHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const admin = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }), serverFactory: (handler) => { adminHandler = handler; return createServer(); } });
  admin.setNotFoundHandler((_r, reply) => sendProblem(reply, 'not_found'));
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/readyz', async (_request, reply) => {
    const r = await readiness();
    return reply.code(r.ok ? 200 : 503).header('cache-control', 'no-store').send(r.body);
  });
  admin.get('/metrics', async (_request, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));

  async function readiness(): Promise<{ ok: boolean; body: { status: string; checks: Record<string, string> } }> {
    const checks: Record<string, string> = {};
    let ok = true;
    const timed = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('timeout')), 2000).unref())]);
    try { await timed(ctx.store.ping()); checks.store = 'ok'; } catch { checks.store = 'unavailable'; ok = false; }
    await Promise.all([...authenticators.values()].map(async (a) => {
      if (!a.ready) return;
      try { const s = await timed(a.ready()); checks[`${a.type === 'jwt' ? 'jwks' : a.type}:${a.name}`] = s; if (s !== 'ok') ok = false; } catch { checks[`${a.type === 'jwt' ? 'jwks' : a.type}:${a.name}`] = 'unavailable'; ok = false; }
    }));
    const now = Date.now();
    for (const r of table.routes) {
      const healthy = r.data.upstream.healthy(now);
      checks[`upstream:${r.name}`] = healthy ? 'ok' : 'unavailable';
      if (!healthy) ok = false;
    }
    return { ok, body: { status: ok ? 'ok' : 'degraded', checks } };
  }

  await app.ready();
  await admin.ready();
  if (!publicHandler || !adminHandler) throw new Error('server factory was not called');
  const pub = publicHandler;
  const adm = adminHandler;

  const upgradeCtx = { ctx, decider, identityHeaders, trust, sessionCookie, assertion, log, toAuthRequest };

  return {
    ctx,
    runtime,
    app: app as unknown as FastifyInstance,
    admin: admin as unknown as FastifyInstance,
    metrics,
    handleRequest: pub,
    handleAdminRequest: adm,
    handleUpgrade: (req, socket, head) => handleUpgrade(upgradeCtx, req, socket, head),
    readiness,
    async close() {
      await app.close().catch(() => undefined);
      await admin.close().catch(() => undefined);
      for (const fn of closeHooks) await Promise.resolve(fn()).catch(() => undefined);
      for (const c of cleanups) await Promise.resolve(c()).catch(() => undefined);
      await closeContext();
    },
  };
}

