// One decision per request, shared by the proxy and the forward-auth endpoint: match the route,
// run its chain, check its requirements and CSRF. Returns what to do; never sends anything.
import type { RouteConfig } from '../config/schema.js';
import type { GatewayContext } from '../context.js';
import type { ErrorCode } from '../errors.js';
import { normalizeTarget, type NormalizedTarget } from '../routing/normalize.js';
import { stripPathPrefix, type CompiledRoute, type RouteTable } from '../routing/table.js';
import type { CompiledCors } from '../proxy/cors.js';
import type { UpstreamPool } from '../proxy/upstream.js';
import { authorize, challengesFor, runChain, type ChainResult, type CompiledRequirements } from './chain.js';
import { isCrossSiteBrowserRequest, isSameOriginRequest, isUnsafeMethod } from './csrf.js';
import type { Authenticator, AuthRequest, Identity } from './types.js';

export interface RouteData {
  readonly chain: readonly Authenticator[];
  readonly anonymous: boolean;
  readonly needsBody: boolean;
  readonly requirements: CompiledRequirements | undefined;
  readonly login: boolean;
  /** The route's only OIDC authenticator, when a browser should go straight to that provider. */
  readonly loginProvider: string | undefined;
  readonly upstream: UpstreamPool;
  readonly stripPath: string | undefined;
  readonly passCredentials: boolean;
  /** Header names (lower case) of API keys the chain consumes; removed before forwarding. */
  readonly credentialHeaders: readonly string[];
  /** Cookie names (e.g. Django's sessionid) the chain consumes; removed like the gateway's own. */
  readonly credentialCookies?: readonly string[] | undefined;
  /** Query parameters API keys are read from (`apikey` `queryParam`); removed before forwarding. */
  readonly credentialQueryParams: readonly string[];
  readonly websocket: boolean;
  readonly timeoutMs: number | undefined;
  readonly config: RouteConfig;
  /** The route's `cors` policy, compiled (proxy/cors.ts); undefined without one. */
  readonly cors?: CompiledCors | undefined;
}

export type Route = CompiledRoute<RouteData>;

export type Decision =
  | { kind: 'allow'; route: Route; identity: Identity | undefined; authenticator: string }
  | {
      kind: 'deny';
      route: Route | undefined;
      code: ErrorCode;
      detail?: string | undefined;
      headers?: Record<string, string> | undefined;
      /** Browser redirect instead of the problem response. */
      redirect?: string | undefined;
      authenticator?: string | undefined;
      identity?: Identity | undefined;
    };

function wantsHtml(method: string, accept: string | undefined): boolean {
  return (method === 'GET' || method === 'HEAD') && accept !== undefined && accept.includes('text/html');
}

/** Methods the gateway never forwards. */
export const REFUSED_METHODS: ReadonlySet<string> = new Set(['TRACE', 'TRACK', 'CONNECT']);

export class Decider {
  /** `server.paths.caseInsensitive`: the table was compiled with lower-cased path patterns. */
  readonly caseInsensitive: boolean;
  private readonly refuseMatrixParams: boolean;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly table: RouteTable<RouteData>,
  ) {
    this.caseInsensitive = ctx.config.server?.paths?.caseInsensitive === true;
    this.refuseMatrixParams = ctx.config.server?.paths?.refuseMatrixParams === true;
  }

  /**
   * SPEC 4 step 1 for every entry point (proxy, WebSocket, forward-auth): the normalized target,
   * and with `server.paths.refuseMatrixParams` no ';' anywhere in the decoded path (Tomcat and
   * Spring read `/admin;x/users` as `/admin/users`).
   */
  normalize(rawUrl: string): NormalizedTarget {
    const target = normalizeTarget(rawUrl);
    if (target.ok && this.refuseMatrixParams && target.path.includes(';')) return { ok: false, reason: 'path parameters are refused' };
    return target;
  }

  match(host: string, path: string, method: string): Route | undefined {
    return this.table.match(host, this.caseInsensitive ? path.toLowerCase() : path, method);
  }

  /** The path the upstream receives (after `stripPath`), in the request's own case. */
  upstreamPath(route: Route, path: string): string {
    return stripPathPrefix(path, route.data.stripPath, this.caseInsensitive);
  }

  /**
   * `originalUrl` is the URL a browser should come back to after signing in (path+query, or an
   * absolute URL for another host). `upgrade`: a WebSocket handshake (a GET that opens a
   * channel both ways, so the session's CSRF rule applies to it).
   */
  decide(route: Route, req: AuthRequest, originalUrl: string, upgrade = false): Decision | Promise<Decision> {
    const data = route.data;
    if (data.anonymous) return { kind: 'allow', route, identity: undefined, authenticator: 'anonymous' };
    // Synchronous when the chain is (warm caches): no promise on the hot path.
    const result = runChain(data.chain, req);
    if (result instanceof Promise) return result.then((r) => this.conclude(route, req, originalUrl, upgrade, r));
    return this.conclude(route, req, originalUrl, upgrade, result);
  }

  private conclude(route: Route, req: AuthRequest, originalUrl: string, upgrade: boolean, result: ChainResult): Decision {
    const data = route.data;
    if (result.kind === 'unauthenticated') {
      if (data.login && wantsHtml(req.method, req.headers.accept)) return { kind: 'deny', route, code: 'unauthenticated', redirect: this.loginUrl(data, originalUrl) };
      const challenges = challengesFor(data.chain);
      return { kind: 'deny', route, code: 'unauthenticated', headers: challenges.length > 0 ? { 'www-authenticate': challenges.join(', ') } : undefined };
    }
    if (result.kind === 'reject') {
      const r = result.rejection;
      const headers: Record<string, string> = { ...(r.headers ?? {}) };
      if (r.code !== 'store_unavailable' && r.code !== 'service_unavailable' && r.code !== 'locked' && r.code !== 'bad_request') {
        const challenges = challengesFor(data.chain, result);
        if (challenges.length > 0) headers['www-authenticate'] = challenges.join(', ');
      }
      return { kind: 'deny', route, code: r.code, detail: r.detail, headers, authenticator: result.authenticator.name };
    }
    const identity = result.identity;
    const denied = authorize(identity, data.requirements, Math.floor(Date.now() / 1000));
    if (denied !== undefined) {
      let redirect: string | undefined;
      if (data.login && wantsHtml(req.method, req.headers.accept)) {
        if (denied === 'mfa_required') redirect = `${this.ctx.prefix}/mfa?rd=${encodeURIComponent(originalUrl)}`;
        else if (denied === 'reauth_required') redirect = this.loginUrl(data, originalUrl);
      }
      return { kind: 'deny', route, code: denied, redirect, authenticator: result.authenticator.name, identity };
    }
    if (isCsrf(req, identity.method, upgrade, this.ctx)) return { kind: 'deny', route, code: 'csrf', authenticator: result.authenticator.name, identity };
    return { kind: 'allow', route, identity, authenticator: result.authenticator.name };
  }

  private loginUrl(data: RouteData, originalUrl: string): string {
    const rd = encodeURIComponent(originalUrl);
    if (data.loginProvider) return `${this.ctx.prefix}/oidc/${encodeURIComponent(data.loginProvider)}/login?rd=${rd}`;
    return `${this.ctx.prefix}/login?rd=${rd}`;
  }
}

/** Identities carried by the browser session cookie: CSRF applies to them. */
export function isSessionMethod(method: string): boolean {
  return method === 'session' || method === 'django-session' || method.startsWith('oidc:');
}

/**
 * CSRF (SPEC 4 step 6, issue 9 item 3): a session-authenticated request with any non-safe method,
 * or a session-authenticated WebSocket handshake, must come from an allowed origin; a Basic one
 * (browsers re-send cached Basic credentials cross-site) must not say it comes from another site.
 */
function isCsrf(req: AuthRequest, method: string, upgrade: boolean, ctx: GatewayContext): boolean {
  if (isSessionMethod(method)) return (upgrade || isUnsafeMethod(req.method)) && !isSameOriginRequest(req.headers, ctx);
  if (method === 'basic') return (upgrade || isUnsafeMethod(req.method)) && isCrossSiteBrowserRequest(req.headers, ctx);
  return false;
}
