// OIDC / social sign-in endpoints (SPEC 6): `GET /oidc/:name/login`, `GET /oidc/:name/callback`,
// `POST /oidc/:name/backchannel-logout`. Every failed callback is a 4xx page and leaves no session;
// a success is a gateway session like a password login (new id, the browser's old one ended).
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, sendProblem, type ErrorCode } from '../errors.js';
import { FLOW_COOKIE, FLOW_TTL_MS, startFlow, takeFlow } from '../oidc/flow.js';
import { sessionForIdentity } from '../oidc/policy.js';
import { resolveOidcSettings } from '../oidc/presets.js';
import { OidcLoginError } from '../oidc/types.js';
import { audit } from '../ops/audit.js';
import { loginProviderOf } from '../pipeline/authenticators/oidc.js';
import type { Runtime } from '../runtime.js';
import { acquireSessionService } from '../sessions/service.js';
import type { OidcSessionInfo } from '../sessions/types.js';
import { safeRedirectTarget } from '../util/redirect.js';
import { LoginPage } from './login-page.js';

const FLOW_COOKIE_RE = /^[A-Za-z0-9_-]{43}$/;
const MAX_LOGOUT_TOKEN = 16 * 1024;

const digest = (v: string): string => createHash('sha256').update(v).digest('base64url');

/** The redirect URI registered at the provider: `{publicUrl}{prefix}/oidc/<name>/callback`. */
export function oidcRedirectUri(rt: Pick<Runtime, 'ctx'>, name: string): string {
  return `${rt.ctx.publicUrl.origin}${rt.ctx.prefix}/oidc/${encodeURIComponent(name)}/callback`;
}

/**
 * Where a browser goes after `/logout` ended an OIDC session: the provider's end-session endpoint
 * (RP-initiated logout, with id_token_hint, post_logout_redirect_uri and client_id) when it has one
 * and `rpInitiatedLogout` is on; undefined otherwise (GitHub: the gateway session alone ends).
 */
export function oidcEndSessionUrl(rt: Pick<Runtime, 'ctx' | 'authenticators'>, oidc: OidcSessionInfo, rd: string): string | undefined {
  const entry = loginProviderOf(rt.authenticators.get(oidc.provider));
  if (entry === undefined) return undefined;
  const back = new URL(rd, rt.ctx.publicUrl).toString();
  return entry.provider.endSessionUrl(oidc.idToken, back)?.toString();
}

export default async function oidcEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const ctx = rt.ctx;
  if (![...rt.authenticators.values()].some((a) => a.type === 'oidc')) return;
  const { service, release } = acquireSessionService(ctx);
  rt.onClose(release);
  const page = new LoginPage(ctx);
  const flowCookiePath = `${ctx.prefix}/oidc/`;

  const providerOf = (request: FastifyRequest) => {
    const name = (request.params as { name?: string }).name ?? '';
    const entry = loginProviderOf(rt.authenticators.get(name));
    return entry === undefined ? undefined : { name, ...entry };
  };

  function errorPage(reply: FastifyReply, code: ErrorCode, message: string, rd = '/'): FastifyReply {
    return reply.code(new GatewayError(code).status).headers(page.headers).send(page.render({ rd, message }));
  }

  /** The browser's live session, if any (a store outage counts as none here). */
  async function activeSession(request: FastifyRequest) {
    try {
      const lookup = await service.resolveCookie(request.cookies[service.cookieName]);
      return lookup.kind === 'active' ? lookup.session : undefined;
    } catch {
      return undefined;
    }
  }

  app.get('/oidc/:name/login', async (request, reply) => {
    const p = providerOf(request);
    if (p === undefined) return sendProblem(reply, 'not_found', 'No such sign-in provider.');
    const rd = safeRedirectTarget((request.query as Record<string, unknown>).rd, ctx);
    if (!(await p.provider.available())) {
      return errorPage(reply, 'service_unavailable', `Sign-in with ${p.cfg.label ?? p.name} is unavailable right now. Please try again in a moment or use another sign-in method.`, rd);
    }
    // A browser that is signed in and comes here again is stepping up: the provider asks again.
    const reauthenticate = (await activeSession(request)) !== undefined;
    const presented = request.cookies[FLOW_COOKIE];
    const browser = presented !== undefined && FLOW_COOKIE_RE.test(presented) ? presented : randomBytes(32).toString('base64url');
    let url: URL;
    try {
      const started = await startFlow(ctx.store, p.name, rd, browser, request.ip);
      if (!started.ok) return errorPage(reply, 'locked', 'Too many sign-ins were started from your address. Please wait a few minutes and try again.', rd);
      url = await p.provider.authorizationUrl(started.flow, oidcRedirectUri(rt, p.name), { reauthenticate });
    } catch (err) {
      if (err instanceof OidcLoginError) return errorPage(reply, err.code, err.userMessage, rd);
      if (err instanceof GatewayError) return errorPage(reply, 'store_unavailable', 'Sign-in is temporarily unavailable. Please try again in a moment.', rd);
      throw err;
    }
    reply.setCookie(FLOW_COOKIE, browser, { path: flowCookiePath, httpOnly: true, sameSite: 'lax', secure: ctx.publicUrl.protocol === 'https:', maxAge: Math.floor(FLOW_TTL_MS / 1000) });
    return reply.code(302).header('cache-control', 'no-store').header('location', url.toString()).send();
  });

  app.get('/oidc/:name/callback', async (request, reply) => {
    const p = providerOf(request);
    if (p === undefined) return sendProblem(reply, 'not_found', 'No such sign-in provider.');
    const method = `oidc:${p.name}`;
    const fail = (code: ErrorCode, message: string, reason: string, rd = '/') => {
      audit(ctx, 'login.failure', { ip: request.ip, method, reason });
      request.log.info({ provider: p.name, reason }, 'OIDC sign-in refused');
      return errorPage(reply, code, message, rd);
    };
    const callbackUrl = new URL(request.url, ctx.publicUrl.origin);
    let taken;
    try {
      taken = await takeFlow(ctx.store, callbackUrl.searchParams.get('state'), p.name, request.cookies[FLOW_COOKIE]);
    } catch {
      return fail('store_unavailable', 'Sign-in is temporarily unavailable. Please try again in a moment.', 'store_unavailable');
    }
    if (!taken.ok) {
      // A reload or a second tab after success: the browser is signed in already, so just go on.
      if (taken.reason === 'unknown' && (await activeSession(request)) !== undefined) return reply.code(302).header('cache-control', 'no-store').header('location', '/').send();
      if (taken.reason === 'foreign') return fail('bad_request', 'This sign-in was started in another browser or window. Please start again here.', 'foreign_state');
      return fail('bad_request', 'Sign-in expired, try again.', 'unknown_state');
    }
    const flow = taken.flow;
    let created;
    try {
      const identity = await p.provider.finishLogin(callbackUrl, flow, oidcRedirectUri(rt, p.name));
      const settings = p.cfg.provider === 'github' ? { hostedDomainClaim: false } : resolveOidcSettings(p.cfg);
      const input = await sessionForIdentity(ctx, p.name, p.cfg, identity, settings);
      // Whatever session the browser brought ends here, whoever it belongs to (fixation).
      await service.destroyByCookie(request.cookies[service.cookieName]);
      created = await service.create(input);
    } catch (err) {
      if (err instanceof OidcLoginError) return fail(err.code, err.userMessage, err.reason, flow.rd);
      if (err instanceof GatewayError) return fail('store_unavailable', 'Sign-in is temporarily unavailable. Please try again in a moment.', 'store_unavailable', flow.rd);
      throw err;
    }
    const { session, cookie } = created;
    reply.setCookie(service.cookieName, cookie, service.cookieOptions());
    // The flow cookie stays: other tabs of this browser may still be signing in (it expires with them).
    audit(ctx, 'oidc.login', { user: session.user, ip: request.ip, method, id: session.id });
    request.log.info({ user: session.user, session: session.id, provider: p.name }, 'signed in');
    return reply.code(302).header('cache-control', 'no-store').header('location', flow.rd).send();
  });

  // Called by the provider, server to server (OIDC Back-Channel Logout 1.0 §2.5): no cookies, no CSRF.
  app.post('/oidc/:name/backchannel-logout', async (request, reply) => {
    const p = providerOf(request);
    if (p === undefined || p.provider.verifyLogoutToken === undefined) return sendProblem(reply, 'not_found', 'No such back-channel logout endpoint.');
    const body = request.body as Record<string, unknown> | undefined;
    const token = body?.logout_token;
    if (typeof token !== 'string' || token === '' || token.length > MAX_LOGOUT_TOKEN) return sendProblem(reply, 'bad_request', 'logout_token is required.');
    let claims;
    try {
      claims = await p.provider.verifyLogoutToken(token);
    } catch (err) {
      if (err instanceof OidcLoginError) {
        request.log.info({ provider: p.name, reason: err.reason }, 'back-channel logout refused');
        return sendProblem(reply, err.code, err.code === 'bad_request' ? 'The logout token is not valid.' : undefined);
      }
      throw err;
    }
    try {
      // Each logout token acts once: a replay is answered the same but ends nothing (a replayed
      // sub-wide token must not end sessions started after it).
      const ttlMs = Math.max(60_000, claims.exp * 1000 - Date.now() + 60_000);
      const fresh = await ctx.store.setIfAbsent(`oidc:jti:${digest(`${claims.iss}\n${claims.jti}`)}`, '1', ttlMs);
      const ended = fresh ? await service.destroyByOidc(claims.iss, { sid: claims.sid, sub: claims.sub }) : [];
      audit(ctx, 'oidc.backchannel_logout', { user: ended[0]?.user, ip: request.ip, method: `oidc:${p.name}`, reason: fresh ? `${ended.length} session(s) ended` : 'replayed', id: ended.map((e) => e.id).join(',') || undefined });
    } catch (err) {
      if (err instanceof GatewayError) return sendProblem(reply, err.code, err.detail);
      throw err;
    }
    return reply.code(200).header('cache-control', 'no-store').send();
  });
}
