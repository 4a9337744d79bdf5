// Builds one gateway (public app + admin app) from a loaded config. A reload builds a new one
// and swaps it in (see gateway.ts); nothing here listens on a socket.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type pino from 'pino';
import type { LoadedConfig } from './config/load.js';
import type { AuthenticatorConfig } from './config/schema.js';
import type { GatewayContext } from './context.js';
import { createUserDirectory } from './credentials/users.js';
import { createLockout } from './credentials/lockout.js';
import { loadSigningKeys } from './credentials/keys.js';
import { createEndpointsApp } from './endpoints/app.js';
import { createAdminApp } from './ops/admin.js';
import { openAuditLog } from './ops/audit.js';
import { Metrics } from './ops/metrics.js';
import { createRequestLogger } from './ops/request-log.js';
import { createAnonymousAuthenticator } from './pipeline/authenticators/anonymous.js';
import { compileRequirements } from './pipeline/chain.js';
import { Decider, type RouteData } from './pipeline/decide.js';
import { IdentityHeaders } from './pipeline/identity.js';
import { AUTHENTICATOR_FACTORIES } from './pipeline/registry.js';
import type { Authenticator } from './pipeline/types.js';
import { createFastPath, ProxyHandler } from './proxy/handler.js';
import type { FastPathDeps } from './proxy/request.js';
import { UpstreamPool } from './proxy/upstream.js';
import { compileCors } from './proxy/cors.js';
import { handleUpgrade } from './proxy/websocket.js';
import { RouteTable, compileRoute } from './routing/table.js';
import type { Runtime } from './runtime.js';
import { createStore } from './store/index.js';
import { instrumentStore } from './store/instrumented.js';
import { durationMs } from './util/duration.js';
import { compileTrust } from './util/trust.js';
import { AssertionSigner } from './pipeline/assertion.js';
import { DJANGO_SESSION_COOKIE } from './pipeline/authenticators/django-session.js';

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
    // Audit events go to their own stream when `audit.destination` names one (SPEC 7).
    const auditLog = cfg.audit ? openAuditLog(cfg.audit.destination, loaded.dir) : undefined;
    if (auditLog) closers.push(async () => auditLog.close());
    const ctx: GatewayContext = { config: cfg, configDir: loaded.dir, publicUrl, prefix, store, users, lockout, signing, log, audit: auditLog?.logger, cacheKey: randomBytes(32), metrics };
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
    // Only the gateway's own credentials: a DRF key (token source: django) never calls /me or mints gateway tokens.
    const existing = [...configured.values()].find((a) => a.type === cfg.type && (cfg.type !== 'jwt' || (ctx.config.authenticators?.[a.name] as { issuer?: string } | undefined)?.issuer === 'self')
      && (ctx.config.authenticators?.[a.name] as { source?: string } | undefined)?.source !== 'django');
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
      const credentialCookies: string[] = [];
      const credentialQueryParams: string[] = [];
      for (const a of chain) {
        const ac = cfg.authenticators?.[a.name];
        if (ac !== undefined && ac.type === 'apikey') {
          credentialHeaders.push((ac.header ?? 'X-API-Key').toLowerCase());
          if (ac.queryParam !== undefined) credentialQueryParams.push(ac.queryParam);
        }
        if (ac !== undefined && ac.type === 'django-session') credentialCookies.push(ac.cookie ?? DJANGO_SESSION_COOKIE);
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
        credentialCookies,
        credentialQueryParams,
        websocket: r.websocket === true,
        timeoutMs: r.timeout !== undefined ? durationMs(r.timeout) : undefined,
        config: r,
        cors: compileCors(r.cors, r.match.methods),
      };
      return compileRoute(config, data);
    }),
  );
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
  const trust = compileTrust(cfg.server?.trustedProxies ?? []);
  const bodyLimit = cfg.server?.bodyLimit ?? 1024 * 1024;
  const deps: FastPathDeps = {
    ctx,
    decider: new Decider(ctx, table),
    identityHeaders: new IdentityHeaders(cfg.identity, cfg.identity?.assertion !== undefined),
    assertion: cfg.identity?.assertion ? new AssertionSigner(ctx, durationMs(cfg.identity.assertion.ttl, '60s')) : undefined,
    trust,
    sessionCookie: cfg.login?.session?.cookie ?? SESSION_COOKIE_DEFAULT,
    bodyLimit,
    metrics,
    log,
  };
  const proxy = new ProxyHandler(deps, { connectTimeout: durationMs(cfg.server?.timeouts?.connect, '5s'), upstreamTimeout: durationMs(cfg.server?.timeouts?.upstream, '30s') });
  cleanups.push(() => proxy.close());
  const requestLog = createRequestLogger(log, metrics);
  cleanups.push(() => requestLog.flush());
  const fast = createFastPath(deps, proxy, requestLog);

  const closeHooks: (() => Promise<void> | void)[] = [];
  const app = await createEndpointsApp(ctx, { log, trust, bodyLimit, callerChain, authenticators, closeHooks, requestLog, handOver: fast.handle });
  const admin = await createAdminApp(ctx, { log, metrics, authenticators, table });
  const upgradeCtx = { ctx, decider: deps.decider, identityHeaders: deps.identityHeaders, trust, sessionCookie: deps.sessionCookie, assertion: deps.assertion, log };
  const prefix = ctx.prefix;

  return {
    ctx,
    runtime: app.runtime,
    app: app.app,
    admin: admin.app,
    metrics,
    // Fastify keeps everything under server.prefix except GET/HEAD /verify; the rest is the fast path.
    handleRequest(req, res) {
      const url = req.url ?? '/';
      if (url.startsWith(prefix) && !fast.isVerify(req)) {
        const next = url.charCodeAt(prefix.length);
        if (url.length === prefix.length || next === 47 /* / */ || next === 63 /* ? */) return app.handler(req, res);
      }
      fast.handle(req, res);
    },
    handleAdminRequest: admin.handler,
    handleUpgrade: (req, socket, head) => handleUpgrade(upgradeCtx, req, socket, head),
    readiness: admin.readiness,
    async close() {
      await app.app.close().catch(() => undefined);
      await admin.app.close().catch(() => undefined);
      for (const fn of closeHooks) await Promise.resolve(fn()).catch(() => undefined);
      for (const c of cleanups) await Promise.resolve(c()).catch(() => undefined);
      await closeContext();
    },
  };
}

