// The second factor (SPEC 6 `/mfa/*`; issue 11; THREATS 35, 54-59). A login that needs a second
// factor leaves a *pending* session (never an identity, 5 minutes); completing any factor here
// replaces it with a new session id (fixation) with `mfa: true`, the factor added to `amr` and
// the sign-in time kept. The same endpoints step an existing session up (route `require.mfa`,
// `require.maxAge`): the session is replaced in place and its sign-in time refreshed — except by a
// recovery code, which completes the factor but is no re-authentication. Every code attempt
// counts in the login lockout (mfa/attempts.ts). Cookie-authenticated posts pass the same CSRF
// check as /login.
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { UserRecord } from '../context.js';
import { GatewayError, problemBody, sendProblem, type ErrorCode } from '../errors.js';
import { attemptCode, type AttemptResult } from '../mfa/attempts.js';
import { acquireMfaService, MfaService } from '../mfa/service.js';
import { audit } from '../ops/audit.js';
import type { Runtime } from '../runtime.js';
import { acquireSessionService } from '../sessions/service.js';
import type { SessionRecord } from '../sessions/types.js';
import { safeRedirectTarget } from '../util/redirect.js';
import { bodyKind, identityJson, passesBrowserCsrf } from './login.js';
import { MfaPages, type MfaPageError } from './mfa-page.js';

/** A change of factors (new TOTP, new recovery codes, removal) needs a sign-in this recent. */
const FRESH_SIGN_IN_SECONDS = 5 * 60;
const MAX_FIELD = 64 * 1024;
/** Password-less sign-in options (a stored challenge each) per client address and minute. */
const PASSKEY_OPTIONS_PER_WINDOW = 30;
const PASSKEY_OPTIONS_WINDOW_MS = 60_000;

type Factor = 'otp' | 'recovery' | 'email' | 'hwk';

interface Caller {
  readonly session: SessionRecord;
  readonly pending: boolean;
  readonly user: UserRecord;
}

function field(request: FastifyRequest, name: string): unknown {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !Object.hasOwn(body, name)) return undefined;
  return (body as Record<string, unknown>)[name];
}

function stringField(request: FastifyRequest, name: string): string | undefined {
  const v = field(request, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > MAX_FIELD) throw new GatewayError('bad_request', `The field "${name}" must be a string.`);
  return v;
}

function queryField(request: FastifyRequest, name: string): unknown {
  return (request.query as Record<string, unknown> | undefined)?.[name];
}

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store');

/** `/jwt/token` and `/token` without `otp` for a user with a factor: 401 with code mfa_required (issue 11). */
export function sendOtpRequired(reply: FastifyReply): FastifyReply {
  const body = { ...problemBody('mfa_required', 'This account has a second factor: send the current code as "otp".'), status: 401, title: 'Unauthorized' };
  return reply.code(401).header('content-type', 'application/problem+json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify(body));
}

/**
 * The API path's second factor (`otp` on `/jwt/token` and `/token`): a TOTP code or a recovery
 * code, counted in the lockout. Returns the factor, or the problem to answer with.
 */
export async function verifyApiOtp(service: MfaService, rt: Runtime, user: UserRecord, otp: string, ip: string): Promise<{ ok: true; factor: 'otp' | 'recovery' } | { ok: false; code: ErrorCode; retryAfterSeconds?: number | undefined }> {
  const recovery = !/^[0-9]{6}$/.test(otp) && MfaService.isRecoveryCodeShape(otp);
  if (recovery && !(await service.recoveryAllowed(user.username))) return { ok: false, code: 'locked', retryAfterSeconds: 3600 };
  const result = await attemptCode(rt.ctx, user.username, ip, () => (recovery ? service.useRecoveryCode(user.username, otp) : service.verifyTotp(user.username, otp)));
  if (!result.ok) {
    audit(rt.ctx, 'mfa.failure', { user: user.username, ip, method: recovery ? 'recovery' : 'totp', reason: result.code });
    return result;
  }
  if (recovery) await notifyRecoveryUsed(service, user, await service.recoveryCodesLeft(user.username));
  return { ok: true, factor: recovery ? 'recovery' : 'otp' };
}

async function notifyRecoveryUsed(service: MfaService, user: UserRecord, left: number): Promise<void> {
  await service.email.notify(user, 'A recovery code was used', `A recovery code was just used to sign in to your account. ${left} unused codes remain.\n\nIf this was not you, contact your administrator at once.`);
}

export default async function mfaEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const ctx = rt.ctx;
  const sessions = acquireSessionService(ctx);
  rt.onClose(sessions.release);
  const held = acquireMfaService(ctx);
  rt.onClose(held.release);
  const mfa = held.service;
  const service = sessions.service;
  const pages = new MfaPages(ctx);
  const cookieName = service.cookieName;

  const ipOf = (request: FastifyRequest): string => rt.toAuthRequest(request).ip;

  /** The browser's session, pending or active, with its user as the directory knows them now. */
  async function caller(request: FastifyRequest): Promise<Caller | undefined> {
    const lookup = await service.resolveCookie(request.cookies[cookieName]);
    if (lookup.kind === 'absent') return undefined;
    const user = await ctx.users.get(lookup.session.user);
    if (user === undefined || user.disabled) return undefined;
    return { session: lookup.session, pending: lookup.kind === 'pending', user };
  }

  const csrfGuard = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!passesBrowserCsrf(request, bodyKind(request), rt)) return sendProblem(reply, 'csrf');
    return undefined;
  };

  const rdOf = (request: FastifyRequest): string => safeRedirectTarget(stringField(request, 'rd') ?? queryField(request, 'rd'), ctx);
  const isForm = (request: FastifyRequest): boolean => bodyKind(request) === 'form';

  function page(reply: FastifyReply, status: number, html: string): FastifyReply {
    return reply.code(status).headers(pages.headers).send(html);
  }

  /** A failure: the page again (form) or the problem (JSON). */
  async function fail(request: FastifyRequest, reply: FastifyReply, c: Caller | undefined, code: ErrorCode & MfaPageError, retryAfterSeconds?: number): Promise<FastifyReply> {
    const headers: Record<string, string> = retryAfterSeconds !== undefined ? { 'retry-after': String(retryAfterSeconds) } : {};
    if (!isForm(request) || c === undefined) return sendProblem(reply, code, undefined, headers);
    const methods = await methodsOf(c);
    return page(reply.headers(headers), new GatewayError(code).status, pages.secondStep({ rd: rdOf(request), methods, error: code, retryAfterSeconds, stepUp: !c.pending, passkeyLogin: false }));
  }

  /** What the caller can complete: the pending login's methods, or (step-up) the user's factors — enrolment when there is none. */
  async function methodsOf(c: Caller): Promise<readonly string[]> {
    if (c.session.pendingMfa !== undefined) return c.session.pendingMfa.methods;
    return (await mfa.loginMethods(c.user)) ?? [...(mfa.email.available(c.user) ? ['email'] : []), 'enroll'];
  }

  /**
   * Completes a factor: a new session replaces the caller's (pending → signed in; active → stepped
   * up) and its cookie is set.
   */
  async function upgrade(request: FastifyRequest, reply: FastifyReply, c: Caller, factor: Factor): Promise<SessionRecord> {
    const old = c.session;
    // A step-up is a re-authentication (require.maxAge) — a recovery code is not.
    const authTime = !c.pending && factor !== 'recovery' ? Math.floor(Date.now() / 1000) : old.authTime;
    const { session, cookie } = await service.create({
      user: c.user.username,
      email: c.user.email,
      groups: c.user.groups,
      method: old.method,
      amr: [...new Set([...old.amr, factor])],
      mfa: true,
      authTime,
      ...(old.oidc !== undefined ? { oidc: old.oidc } : {}),
      ...(old.credential !== undefined ? { passwordHash: c.user.passwordHash } : {}),
    });
    await service.destroy(old.id, old.user);
    reply.setCookie(cookieName, cookie, service.cookieOptions());
    if (c.pending) audit(ctx, 'login.success', { user: c.user.username, ip: ipOf(request), method: `password+${factor}`, id: session.id });
    request.log.info({ user: session.user, session: session.id, factor }, c.pending ? 'second factor completed' : 'session stepped up');
    return session;
  }

  /** `upgrade`, then 303 to rd (form) or the identity (JSON). */
  async function complete(request: FastifyRequest, reply: FastifyReply, c: Caller, factor: Factor, json: Record<string, unknown> = {}): Promise<FastifyReply> {
    const session = await upgrade(request, reply, c, factor);
    noStore(reply);
    if (isForm(request)) return reply.code(303).header('location', rdOf(request)).send();
    return reply.code(200).send({ user: identityJson({ ...session, scopes: [] }), ...json });
  }

  async function failure(request: FastifyRequest, c: Caller, method: string, result: Extract<AttemptResult, { ok: false }>): Promise<void> {
    audit(ctx, 'mfa.failure', { user: c.user.username, ip: ipOf(request), method, reason: result.code });
  }

  /** A session that may change factors: signed in (fully), recently when it already has some. */
  async function manager(request: FastifyRequest, reply: FastifyReply, opts: { allowEnrolling?: boolean; fresh?: false } = {}): Promise<Caller | undefined> {
    const c = await caller(request);
    if (c === undefined) {
      sendProblem(reply, 'unauthenticated');
      return undefined;
    }
    if (c.pending) {
      if (opts.allowEnrolling === true && c.session.pendingMfa?.methods.includes('enroll')) return c;
      sendProblem(reply, 'mfa_required');
      return undefined;
    }
    const hasFactors = (await mfa.loginMethods({ ...c.user, mfaRequired: false })) !== undefined;
    if (hasFactors && !c.session.mfa) {
      sendProblem(reply, 'mfa_required');
      return undefined;
    }
    // Re-enrolling, regenerating codes or removing a factor needs a recent sign-in (THREATS 59).
    if (hasFactors && opts.fresh !== false && Math.floor(Date.now() / 1000) - c.session.authTime > FRESH_SIGN_IN_SECONDS) {
      sendProblem(reply, 'reauth_required', 'Changing your second factors needs a recent sign-in: sign in again.');
      return undefined;
    }
    return c;
  }

  // ---- The second step --------------------------------------------------------------------

  app.get('/mfa', async (request, reply) => {
    const rd = safeRedirectTarget(queryField(request, 'rd'), ctx);
    const c = await caller(request);
    if (c === undefined) {
      if (mfa.webauthn.passkeyLogin) return page(reply, 200, pages.secondStep({ rd, methods: [], stepUp: false, passkeyLogin: true }));
      return reply.code(303).header('location', `${ctx.prefix}/login?rd=${encodeURIComponent(rd)}`).send();
    }
    const methods = await methodsOf(c);
    // Nothing to enter yet and no email code to ask for: the enrolment is the second step.
    if (methods.length === 1 && methods[0] === 'enroll') {
      return reply.code(303).header('location', `${ctx.prefix}/mfa/totp?rd=${encodeURIComponent(rd)}`).send();
    }
    return page(reply, 200, pages.secondStep({ rd, methods, stepUp: !c.pending, emailSent: queryField(request, 'sent') === 'email', passkeyLogin: false }));
  });

  app.post('/mfa/verify', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await caller(request);
    if (c === undefined) return sendProblem(reply, 'unauthenticated', 'Sign in with your password first.');
    const code = (stringField(request, 'code') ?? '').replace(/\s+/g, '');
    if (code === '') return fail(request, reply, c, 'bad_request');
    const ip = ipOf(request);
    const recovery = !/^[0-9]{6}$/.test(code) && MfaService.isRecoveryCodeShape(code);
    if (recovery && !(await mfa.recoveryAllowed(c.user.username))) return fail(request, reply, c, 'locked', 3600);
    const result = await attemptCode(ctx, c.user.username, ip, () => (recovery ? mfa.useRecoveryCode(c.user.username, code) : mfa.verifyTotp(c.user.username, code)));
    if (!result.ok) {
      await failure(request, c, recovery ? 'recovery' : 'totp', result);
      return fail(request, reply, c, result.code, result.retryAfterSeconds);
    }
    if (recovery) await notifyRecoveryUsed(mfa, c.user, await mfa.recoveryCodesLeft(c.user.username));
    return complete(request, reply, c, recovery ? 'recovery' : 'otp');
  });

  // ---- Email codes ------------------------------------------------------------------------

  app.post('/mfa/email/send', { onRequest: csrfGuard }, async (request, reply) => {
    if (!mfa.email.configured) return sendProblem(reply, 'not_found', 'Email codes are not configured.');
    const c = await caller(request);
    if (c === undefined) return sendProblem(reply, 'unauthenticated', 'Sign in with your password first.');
    const sent = await mfa.email.send(c.user, c.user.username, ipOf(request));
    if (!sent.ok) return fail(request, reply, c, 'locked', sent.retryAfterSeconds);
    noStore(reply);
    if (isForm(request)) return reply.code(303).header('location', `${ctx.prefix}/mfa?rd=${encodeURIComponent(rdOf(request))}&sent=email`).send();
    // The same answer whether or not the account has an address (THREATS 58).
    return reply.code(202).send({ sent: true });
  });

  app.post('/mfa/email/verify', { onRequest: csrfGuard }, async (request, reply) => {
    if (!mfa.email.configured) return sendProblem(reply, 'not_found', 'Email codes are not configured.');
    const c = await caller(request);
    if (c === undefined) return sendProblem(reply, 'unauthenticated', 'Sign in with your password first.');
    const code = (stringField(request, 'code') ?? '').replace(/\s+/g, '');
    if (code === '') return fail(request, reply, c, 'bad_request');
    const result = await attemptCode(ctx, c.user.username, ipOf(request), () => mfa.email.verify(c.user.username, code));
    if (!result.ok) {
      await failure(request, c, 'email', result);
      return fail(request, reply, c, result.code, result.retryAfterSeconds);
    }
    return complete(request, reply, c, 'email');
  });

  // ---- TOTP enrolment ---------------------------------------------------------------------

  app.get('/mfa/totp', async (request, reply) => {
    const rd = safeRedirectTarget(queryField(request, 'rd'), ctx);
    const c = await caller(request);
    if (c === undefined) return reply.code(303).header('location', `${ctx.prefix}/login?rd=${encodeURIComponent(`${ctx.prefix}/mfa/totp`)}`).send();
    const allowed = await manager(request, reply, { allowEnrolling: true });
    if (allowed === undefined) return reply;
    const enrollment = await mfa.enrollTotp(c.user.username);
    return page(reply, 200, pages.enrol({ rd, enrollment }));
  });

  app.post('/mfa/totp/enroll', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply, { allowEnrolling: true });
    if (c === undefined) return reply;
    return noStore(reply).send(await mfa.enrollTotp(c.user.username));
  });

  app.post('/mfa/totp/confirm', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply, { allowEnrolling: true });
    if (c === undefined) return reply;
    const code = (stringField(request, 'code') ?? '').replace(/\s+/g, '');
    let codes: string[] | undefined;
    const result = await attemptCode(ctx, c.user.username, ipOf(request), async () => {
      codes = await mfa.confirmTotp(c.user.username, code);
      return codes !== undefined;
    });
    if (!result.ok || codes === undefined) {
      if (!result.ok) await failure(request, c, 'totp-enroll', result);
      const err = result.ok ? 'invalid_credentials' : result.code;
      const retry = result.ok ? undefined : result.retryAfterSeconds;
      if (!isForm(request)) return sendProblem(reply, err, err === 'invalid_credentials' ? 'The code is not valid; check the clock of your device and try again.' : undefined, retry !== undefined ? { 'retry-after': String(retry) } : undefined);
      const enrollment = await mfa.pendingEnrollment(c.user.username);
      if (enrollment === undefined) return reply.code(303).header('location', `${ctx.prefix}/mfa/totp?rd=${encodeURIComponent(rdOf(request))}`).send();
      return page(reply, new GatewayError(err).status, pages.enrol({ rd: rdOf(request), enrollment, error: err }));
    }
    audit(ctx, 'mfa.enrolled', { user: c.user.username, ip: ipOf(request), method: 'totp' });
    // Proving the new factor completes (or steps up) the sign-in; the codes are shown once.
    if (isForm(request)) {
      await upgrade(request, reply, c, 'otp');
      return page(reply, 200, pages.enrol({ rd: rdOf(request), recoveryCodes: codes }));
    }
    return complete(request, reply, c, 'otp', { recoveryCodes: codes });
  });

  app.delete('/mfa/totp', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply);
    if (c === undefined) return reply;
    if (!(await mfa.removeTotp(c.user.username, { ip: ipOf(request), method: 'user' }))) return sendProblem(reply, 'not_found', 'No authenticator app is set up.');
    return noStore(reply).code(204).send();
  });

  app.post('/mfa/recovery/regenerate', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply);
    if (c === undefined) return reply;
    if (!(await mfa.hasTotp(c.user.username))) return sendProblem(reply, 'not_found', 'Recovery codes come with an authenticator app; set one up first.');
    const recoveryCodes = await mfa.regenerateRecoveryCodes(c.user.username);
    audit(ctx, 'mfa.enrolled', { user: c.user.username, ip: ipOf(request), method: 'recovery' });
    return noStore(reply).send({ recoveryCodes });
  });

  app.get('/mfa/factors', async (request, reply) => {
    const c = await caller(request);
    if (c === undefined || c.pending) return sendProblem(reply, c === undefined ? 'unauthenticated' : 'mfa_required');
    return noStore(reply).send(await mfa.listFactors(c.user));
  });

  // ---- WebAuthn -----------------------------------------------------------------------------

  app.get('/mfa/passkeys', async (request, reply) => {
    const c = await caller(request);
    if (c === undefined) return reply.code(303).header('location', `${ctx.prefix}/login?rd=${encodeURIComponent(`${ctx.prefix}/mfa/passkeys`)}`).send();
    const allowed = await manager(request, reply, { fresh: false });
    if (allowed === undefined) return reply;
    return page(reply, 200, pages.passkeys({ credentials: await mfa.webauthn.list(c.user.username) }));
  });

  app.post('/mfa/webauthn/register/options', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply, { fresh: false });
    if (c === undefined) return reply;
    return noStore(reply).send(await mfa.webauthn.registrationOptions(c.user.username, c.session.id));
  });

  app.post('/mfa/webauthn/register/verify', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply, { fresh: false });
    if (c === undefined) return reply;
    const response = field(request, 'response');
    if (typeof response !== 'object' || response === null) return sendProblem(reply, 'bad_request', 'The field "response" must be the RegistrationResponseJSON.');
    const credential = await mfa.webauthn.register(c.user.username, c.session.id, response as RegistrationResponseJSON, stringField(request, 'name'));
    audit(ctx, 'mfa.enrolled', { user: c.user.username, ip: ipOf(request), method: 'webauthn', id: credential.id.slice(0, 16) });
    // Like a confirmed TOTP: the first factor, just proven, upgrades the session that added it.
    if (!c.session.mfa) await upgrade(request, reply, c, 'hwk');
    return noStore(reply).code(201).send({ credential });
  });

  app.get('/mfa/webauthn/credentials', async (request, reply) => {
    const c = await caller(request);
    if (c === undefined || c.pending) return sendProblem(reply, c === undefined ? 'unauthenticated' : 'mfa_required');
    return noStore(reply).send({ credentials: await mfa.webauthn.list(c.user.username) });
  });

  app.delete<{ Params: { id: string } }>('/mfa/webauthn/credentials/:id', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await manager(request, reply);
    if (c === undefined) return reply;
    if (!(await mfa.webauthn.remove(c.user.username, request.params.id))) return sendProblem(reply, 'not_found', 'No such credential.');
    audit(ctx, 'mfa.removed', { user: c.user.username, ip: ipOf(request), method: 'user', reason: 'webauthn', id: request.params.id.slice(0, 16) });
    return noStore(reply).code(204).send();
  });

  app.post('/mfa/webauthn/authenticate/options', { onRequest: csrfGuard }, async (request, reply) => {
    const c = await caller(request);
    if (c === undefined) {
      if (!mfa.webauthn.passkeyLogin) return sendProblem(reply, 'unauthenticated', 'Sign in with your password first.');
      // Anyone may ask, and each answer is a stored challenge: bounded per client address.
      const key = `mfa:webauthn:optrate:${(await mfa.keys()).codeHash('ip', ipOf(request))}`;
      if ((await ctx.store.incr(key, PASSKEY_OPTIONS_WINDOW_MS)) > PASSKEY_OPTIONS_PER_WINDOW) {
        const ms = await ctx.store.ttl(key);
        return sendProblem(reply, 'locked', 'Too many passkey sign-in attempts; try again later.', { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) });
      }
      return noStore(reply).send(await mfa.webauthn.authenticationOptions(undefined));
    }
    return noStore(reply).send(await mfa.webauthn.authenticationOptions({ user: c.user.username, sessionId: c.session.id }));
  });

  app.post('/mfa/webauthn/authenticate/verify', { onRequest: csrfGuard }, async (request, reply) => {
    const response = field(request, 'response');
    if (typeof response !== 'object' || response === null) return sendProblem(reply, 'bad_request', 'The field "response" must be the AuthenticationResponseJSON.');
    const ip = ipOf(request);
    const c = await caller(request);
    if (c === undefined && !mfa.webauthn.passkeyLogin) return sendProblem(reply, 'unauthenticated', 'Sign in with your password first.');
    const expected = c === undefined ? undefined : { user: c.user.username, sessionId: c.session.id };
    let outcome: Awaited<ReturnType<typeof mfa.webauthn.authenticate>> | undefined;
    // Unknown credentials count too: against a stand-in account derived from the credential id.
    const account = c?.user.username ?? `webauthn:${typeof (response as { id?: unknown }).id === 'string' ? (response as { id: string }).id.slice(0, 128) : ''}`;
    const result = await attemptCode(ctx, account, ip, async () => {
      outcome = await mfa.webauthn.authenticate(response as AuthenticationResponseJSON, expected);
      return outcome.ok;
    });
    if (!result.ok || outcome === undefined || !outcome.ok) {
      audit(ctx, 'mfa.failure', { user: c?.user.username ?? (outcome !== undefined && !outcome.ok ? outcome.account : undefined), ip, method: 'webauthn', reason: result.ok ? 'invalid_credentials' : result.code });
      const code = result.ok ? 'invalid_credentials' : result.code;
      return sendProblem(reply, code, undefined, !result.ok && result.retryAfterSeconds !== undefined ? { 'retry-after': String(result.retryAfterSeconds) } : undefined);
    }
    const rd = rdOf(request);
    if (c !== undefined) return complete(request, reply, c, 'hwk', { redirect: rd });

    // Password-less sign-in: a user-verified passkey stands for two factors (SPEC 6).
    const user = await ctx.users.get(outcome.user);
    if (user === undefined || user.disabled || !outcome.userVerified) {
      audit(ctx, 'login.failure', { user: outcome.user, ip, method: 'passkey', reason: user === undefined || user.disabled ? 'invalid_credentials' : 'user_not_verified' });
      return sendProblem(reply, 'invalid_credentials');
    }
    await service.destroyByCookie(request.cookies[cookieName]);
    const { session, cookie } = await service.create({
      user: user.username,
      email: user.email,
      groups: user.groups,
      method: 'session',
      amr: ['hwk', 'user'],
      mfa: true,
      passwordHash: user.passwordHash,
    });
    reply.setCookie(cookieName, cookie, service.cookieOptions());
    audit(ctx, 'login.success', { user: user.username, ip, method: 'passkey', id: session.id });
    return noStore(reply).send({ user: identityJson({ ...session, scopes: [] }), redirect: rd });
  });
}
