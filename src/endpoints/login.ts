// Browser sign-in and sign-out (SPEC 6 `/login`, `/logout`; THREATS 27, 31, 32, 37-41). A form
// post answers with a 303 (or the page again, with the error); a JSON post answers with JSON.
// Every login issues a new session id and ends the one the browser brought (fixation); a logout
// ends the session on every instance and the user's gateway refresh tokens.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyLogin } from '../credentials/login.js';
import { GatewayError, sendProblem, type ErrorCode } from '../errors.js';
import { audit, requestOrigin } from '../ops/audit.js';
import { hasBrowserOriginHeaders, isSameOriginRequest } from '../pipeline/csrf.js';
import type { Identity } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';
import { acquireMfaService } from '../mfa/service.js';
import { acquireSessionService } from '../sessions/service.js';
import type { SessionRecord } from '../sessions/types.js';
import { revokeUserJwtFamilies } from '../tokens/refresh.js';
import { safeRedirectTarget } from '../util/redirect.js';
import { LoginPage, type LoginPageError } from './login-page.js';
import { oidcEndSessionUrl } from './oidc.js';

type BodyKind = 'json' | 'form' | 'none' | 'other';

/** How the request body was sent: decides CSRF strictness and the shape of the answer. */
export function bodyKind(request: FastifyRequest): BodyKind {
  const header = request.headers['content-type'];
  if (header === undefined) return 'none';
  const type = header.split(';', 1)[0]!.trim().toLowerCase();
  if (type === 'application/json') return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  return 'other';
}

/**
 * Login CSRF and logout CSRF (THREATS 31): anything a cross-site form can send (urlencoded,
 * multipart, text/plain) must come from an allowed origin. A JSON or bodiless request cannot be
 * sent cross-site without a CORS preflight (never granted); it is still checked whenever the
 * browser says where it comes from, and only a client that sends no such header (curl, an SDK) skips it.
 */
export function passesBrowserCsrf(request: FastifyRequest, kind: BodyKind, rt: Runtime): boolean {
  if ((kind === 'json' || kind === 'none') && !hasBrowserOriginHeaders(request.headers)) return true;
  return isSameOriginRequest(request.headers, rt.ctx);
}

function stringField(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

function queryField(request: FastifyRequest, name: string): unknown {
  const q = request.query as Record<string, unknown> | undefined;
  return q?.[name];
}

/** The caller's identity as JSON (SPEC 6 `GET /me`; also inside the login answer). */
export function identityJson(identity: Pick<Identity, 'user' | 'email' | 'groups' | 'scopes' | 'method' | 'mfa' | 'authTime'>): Record<string, unknown> {
  return {
    user: identity.user,
    email: identity.email ?? null,
    groups: identity.groups,
    scopes: identity.scopes,
    method: identity.method,
    mfa: identity.mfa,
    authTime: identity.authTime,
  };
}

function sessionJson(session: SessionRecord): Record<string, unknown> {
  return identityJson({ ...session, scopes: [] });
}

export default async function loginEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const ctx = rt.ctx;
  const { service, release } = acquireSessionService(ctx);
  rt.onClose(release);
  const mfa = acquireMfaService(ctx);
  rt.onClose(mfa.release);
  const page = new LoginPage(ctx);
  const cookieName = service.cookieName;

  const setSessionCookie = (reply: FastifyReply, value: string) => reply.setCookie(cookieName, value, service.cookieOptions());
  const clearSessionCookie = (reply: FastifyReply) => {
    const { maxAge: _ignored, ...attributes } = service.cookieOptions();
    reply.clearCookie(cookieName, attributes);
  };

  function renderPage(reply: FastifyReply, status: number, model: Parameters<LoginPage['render']>[0], headers: Record<string, string> = {}): FastifyReply {
    return reply.code(status).headers({ ...page.headers, ...headers }).send(page.render(model));
  }

  /** The page answer for a failed form login, or the problem for a JSON one. */
  function fail(reply: FastifyReply, form: boolean, code: ErrorCode & LoginPageError, extra: { username?: string; rd: string; retryAfterSeconds?: number | undefined }): FastifyReply {
    const headers: Record<string, string> = extra.retryAfterSeconds !== undefined ? { 'retry-after': String(extra.retryAfterSeconds) } : {};
    if (!form) return sendProblem(reply, code, undefined, headers);
    const status = new GatewayError(code).status;
    return renderPage(reply, status, { rd: extra.rd, username: extra.username, error: code, retryAfterSeconds: extra.retryAfterSeconds }, headers);
  }

  app.get('/login', async (request, reply) => {
    const rd = safeRedirectTarget(queryField(request, 'rd'), ctx);
    let signedInAs: string | undefined;
    const presented = request.cookies[cookieName];
    if (presented !== undefined) {
      try {
        const lookup = await service.resolveCookie(presented);
        if (lookup.kind === 'active') signedInAs = lookup.session.user;
        else if (lookup.kind === 'absent' && lookup.clear) clearSessionCookie(reply);
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err; // store down: the form still shows
      }
    }
    return renderPage(reply, 200, { rd, signedInAs });
  });

  // Checked before the body is even parsed: a cross-site post is refused whatever it carries.
  const csrfGuard = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!passesBrowserCsrf(request, bodyKind(request), rt)) return sendProblem(reply, 'csrf');
    return undefined;
  };

  app.post('/login', { onRequest: csrfGuard }, async (request, reply) => {
    const kind = bodyKind(request);
    if (kind !== 'json' && kind !== 'form') return sendProblem(reply, 'unsupported_media_type', 'Send the credentials as JSON or as a form.');
    const form = kind === 'form';
    const body = request.body;
    const rd = safeRedirectTarget(stringField(body, 'rd') ?? queryField(request, 'rd'), ctx);
    const username = stringField(body, 'username');
    const password = stringField(body, 'password');
    if (username === undefined || password === undefined || username === '' || password === '') {
      if (!form) return sendProblem(reply, 'bad_request', 'username and password are required.');
      return fail(reply, true, 'bad_request', { rd, username });
    }

    let check;
    try {
      check = await verifyLogin(ctx, username, password, request.ip, { method: 'password' });
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'store_unavailable') return fail(reply, form, 'store_unavailable', { rd, username });
      throw err;
    }
    if (!check.ok) {
      if (check.code === 'locked') return fail(reply, form, 'locked', { rd, username, retryAfterSeconds: check.retryAfterSeconds ?? 60 });
      if (check.code === 'store_unavailable') return fail(reply, form, 'store_unavailable', { rd, username });
      return fail(reply, form, 'invalid_credentials', { rd, username });
    }
    const user = check.user;

    try {
      // Whatever session the browser brought ends here, whoever it belongs to (fixation).
      await service.destroyByCookie(request.cookies[cookieName]);
      // A second factor is due: a pending session that is never an identity (SPEC 6, THREATS 35).
      const methods = await mfa.service.loginMethods(user);
      if (methods !== undefined) {
        const pending = await service.create({ user: user.username, email: user.email, groups: user.groups, method: 'session', amr: ['pwd'], mfa: false, pendingMfa: { methods }, passwordHash: user.passwordHash });
        setSessionCookie(reply, pending.cookie);
        reply.header('cache-control', 'no-store');
        if (form) return reply.code(303).header('location', `${ctx.prefix}/mfa?rd=${encodeURIComponent(rd)}`).send();
        return reply.code(200).send({ mfaRequired: true, methods });
      }
      const { session, cookie } = await service.create({
        user: user.username,
        email: user.email,
        groups: user.groups,
        method: 'session',
        amr: ['pwd'],
        mfa: false,
        passwordHash: user.passwordHash,
        ip: request.ip,
        userAgent: request.headers['user-agent'],
      });
      setSessionCookie(reply, cookie);
      request.log.info({ user: session.user, session: session.id }, 'signed in');
      reply.header('cache-control', 'no-store');
      if (form) return reply.code(303).header('location', rd).send();
      return reply.code(200).send({ user: sessionJson(session) });
    } catch (err) {
      if (err instanceof GatewayError) return fail(reply, form, 'store_unavailable', { rd, username });
      throw err;
    }
  });

  app.post('/logout', { onRequest: csrfGuard }, async (request, reply) => {
    const kind = bodyKind(request);
    clearSessionCookie(reply);
    let endSession: string | undefined;
    try {
      const ended = await service.destroyByCookie(request.cookies[cookieName]);
      // An OIDC session may also end at its provider (RP-initiated logout).
      if (ended?.oidc !== undefined && kind === 'form') endSession = oidcEndSessionUrl(rt, ended.oidc, safeRedirectTarget(stringField(request.body, 'rd') ?? queryField(request, 'rd'), ctx));
      // Signing out also ends the user's gateway refresh tokens (THREATS 32).
      if (ended?.user !== undefined) await revokeUserJwtFamilies(ctx, ended.user, requestOrigin(request, { reason: 'logout' }));
      if (ended !== undefined) request.log.info({ user: ended.user, session: ended.id }, 'signed out');
      // An audit event only when a live session ended: a replayed logout is no new action.
      if (ended?.user !== undefined) audit(ctx, 'logout', { user: ended.user, id: ended.id, ...requestOrigin(request) });
    } catch (err) {
      if (err instanceof GatewayError) return sendProblem(reply, err.code, err.detail, err.headers);
      throw err;
    }
    reply.header('cache-control', 'no-store');
    if (kind === 'form') {
      const rd = safeRedirectTarget(stringField(request.body, 'rd') ?? queryField(request, 'rd'), ctx);
      return reply.code(303).header('location', endSession ?? rd).send();
    }
    return reply.code(204).send();
  });

  // A link or an image must never sign anybody out (THREATS 32).
  app.get('/logout', async (_request, reply) => sendProblem(reply, 'method_not_allowed', 'Sign out with POST.', { allow: 'POST' }));
}
