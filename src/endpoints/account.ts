// The self-service account page (SPEC 6 `GET /account`) and the form posts behind its buttons.
// Session cookie only: a token or JWT cannot open it. Every post must pass both CSRF defences:
// the origin rule of every cookie-authenticated unsafe request (pipeline/csrf.ts) and the
// session's synchronizer token (`_csrf`, sessions/cookie.ts `formToken`). Posts answer with a
// 303 back to the page (post/redirect/get), except a created token, whose secret is rendered
// into the answer itself: it is never stored anywhere it could be shown again.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, sendProblem } from '../errors.js';
import { requestOrigin } from '../ops/audit.js';
import { isSameOriginRequest } from '../pipeline/csrf.js';
import type { Identity } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';
import { acquireSessionService } from '../sessions/service.js';
import { acquireApiTokens } from '../tokens/api-tokens.js';
import { acquireMfaService, type MfaService } from '../mfa/service.js';
import { AccountPage, isAccountNotice, type AccountPageModel, type MfaFactor } from './account-page.js';
import { isCookieIdentity } from './caller.js';
import { bodyKind } from './login.js';
import { clearSessionCookie, endUserSession } from './sessions.js';
import { createOwnToken, isTokenId } from './tokens.js';

/** The user's second factors for the MFA section. */
export type MfaFactorLister = (user: string) => Promise<readonly MfaFactor[]>;

const day = (iso: string | number): string => new Date(iso).toISOString().slice(0, 10);

/**
 * The MFA service's view of a user as account-page rows: the authenticator app (set up or not),
 * recovery codes left, each passkey. Changes happen on the MFA pages, which ask for a recent
 * sign-in before a factor is replaced or removed.
 */
function mfaFactorLister(rt: Runtime, mfa: MfaService): MfaFactorLister {
  const p = rt.ctx.prefix;
  return async (username) => {
    const user = await rt.ctx.users.get(username);
    if (user === undefined) return [];
    const f = await mfa.listFactors(user);
    const rows: MfaFactor[] = [{
      kind: 'totp',
      label: 'Authenticator app',
      detail: f.totp.enabled ? `Set up${f.totp.createdAt !== null ? ` on ${day(f.totp.createdAt)}` : ''}` : 'Not set up',
      actions: [],
      links: [{ label: f.totp.enabled ? 'Manage' : 'Set up', href: `${p}/mfa/totp` }],
    }];
    if (f.totp.enabled) rows.push({ kind: 'recovery', label: 'Recovery codes', detail: `${f.recoveryCodesLeft} left`, actions: [] });
    for (const c of f.webauthn) rows.push({ kind: 'webauthn', label: c.name, detail: `Passkey, added ${day(c.createdAt)}${c.lastUsedAt !== null ? `, last used ${day(c.lastUsedAt)}` : ''}`, actions: [] });
    rows.push({ kind: 'webauthn', label: 'Passkeys and security keys', detail: `${f.webauthn.length} registered`, actions: [], links: [{ label: 'Manage', href: `${p}/mfa/passkeys` }] });
    return rows;
  };
}

interface AccountCaller {
  readonly identity: Identity;
  readonly sessionId: string;
  readonly formToken: string;
}

const field = (body: unknown, name: string): string | undefined => {
  if (typeof body !== 'object' || body === null) return undefined;
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
};

export default async function accountEndpoints(app: FastifyInstance, rt: Runtime, factorLister?: MfaFactorLister): Promise<void> {
  const ctx = rt.ctx;
  const { service: mfa, release: releaseMfa } = acquireMfaService(ctx);
  rt.onClose(releaseMfa);
  const listMfaFactors = factorLister ?? mfaFactorLister(rt, mfa);
  const { service: sessions, release: releaseSessions } = acquireSessionService(ctx);
  rt.onClose(releaseSessions);
  const { service: tokens, release: releaseTokens } = acquireApiTokens(ctx);
  rt.onClose(releaseTokens);
  const page = new AccountPage(ctx);
  const accountPath = `${ctx.prefix}/account`;

  /** The signed-in browser session, or undefined (and an answer sent). */
  async function sessionCaller(request: FastifyRequest, reply: FastifyReply, browser: boolean): Promise<AccountCaller | undefined> {
    const outcome = await rt.authenticateCaller(request);
    if (outcome.kind === 'reject') {
      sendProblem(reply, outcome.code, outcome.detail, outcome.headers);
      return undefined;
    }
    if (outcome.kind === 'not-mine' || !isCookieIdentity(outcome.identity) || outcome.identity.sessionId === undefined) {
      if (browser) reply.code(302).header('location', `${ctx.prefix}/login?rd=${encodeURIComponent(accountPath)}`).header('cache-control', 'no-store').send();
      else sendProblem(reply, 'unauthenticated', 'Sign in to manage your account.');
      return undefined;
    }
    const sessionId = outcome.identity.sessionId;
    const signer = await sessions.signer();
    return { identity: outcome.identity, sessionId, formToken: signer.formToken(sessionId) };
  }

  /** A form post from the account page itself: form body, same origin, this session's form token. */
  async function formCaller(request: FastifyRequest, reply: FastifyReply): Promise<AccountCaller | undefined> {
    if (bodyKind(request) !== 'form') {
      sendProblem(reply, 'unsupported_media_type', 'Send the account page\'s form.');
      return undefined;
    }
    if (!isSameOriginRequest(request.headers, ctx)) {
      sendProblem(reply, 'csrf');
      return undefined;
    }
    const caller = await sessionCaller(request, reply, false);
    if (caller === undefined) return undefined;
    const token = field(request.body, '_csrf');
    const signer = await sessions.signer();
    if (token === undefined || !signer.formTokenMatches(caller.sessionId, token)) {
      sendProblem(reply, 'csrf', 'The form is out of date; reload the account page.');
      return undefined;
    }
    return caller;
  }

  async function model(caller: AccountCaller, extra: Partial<AccountPageModel> = {}): Promise<AccountPageModel> {
    const user = caller.identity.user;
    const [mine, ownTokens, mfaFactors] = await Promise.all([sessions.listForUser(user), tokens.listTokens(user), listMfaFactors(user)]);
    return { user, email: caller.identity.email, formToken: caller.formToken, currentSessionId: caller.sessionId, sessions: mine, tokens: ownTokens, mfaFactors, now: Date.now(), ...extra };
  }

  const render = (reply: FastifyReply, status: number, m: AccountPageModel) => reply.code(status).headers(page.headers).send(page.render(m));
  const backToPage = (reply: FastifyReply, notice?: string) => reply.code(303).header('cache-control', 'no-store').header('location', notice === undefined ? accountPath : `${accountPath}?done=${notice}`).send();

  app.get('/account', async (request, reply) => {
    const caller = await sessionCaller(request, reply, true);
    if (caller === undefined) return reply;
    const done = (request.query as Record<string, unknown> | undefined)?.done;
    return render(reply, 200, await model(caller, { notice: isAccountNotice(done) ? done : undefined }));
  });

  app.post('/account/sessions/end', async (request, reply) => {
    const caller = await formCaller(request, reply);
    if (caller === undefined) return reply;
    const id = field(request.body, 'id') ?? '';
    const origin = requestOrigin(request, { method: caller.identity.method });
    if (!(await endUserSession(rt, sessions, caller.identity.user, id, origin))) return sendProblem(reply, 'not_found', 'No such session.');
    if (id === caller.sessionId) {
      clearSessionCookie(sessions, reply);
      return reply.code(303).header('location', `${ctx.prefix}/login`).send();
    }
    return backToPage(reply, 'session-ended');
  });

  app.post('/account/sessions/end-others', async (request, reply) => {
    const caller = await formCaller(request, reply);
    if (caller === undefined) return reply;
    const origin = requestOrigin(request, { method: caller.identity.method });
    for (const s of await sessions.listForUser(caller.identity.user)) {
      if (s.id !== caller.sessionId) await endUserSession(rt, sessions, caller.identity.user, s.id, origin);
    }
    return backToPage(reply, 'others-ended');
  });

  app.post('/account/tokens', async (request, reply) => {
    const caller = await formCaller(request, reply);
    if (caller === undefined) return reply;
    const body = request.body as Record<string, unknown>;
    try {
      const created = await createOwnToken(tokens, rt.ctx.config, caller.identity, body, requestOrigin(request, { method: caller.identity.method }));
      return render(reply, 200, await model(caller, { createdToken: { name: created.name, token: created.token, expiresAt: created.expiresAt } }));
    } catch (err) {
      if (!(err instanceof GatewayError) || (err.code !== 'bad_request' && err.code !== 'forbidden')) throw err;
      const typed = { name: field(body, 'name') ?? '', ttl: field(body, 'ttl') ?? '', scopes: field(body, 'scopes') ?? '' };
      return render(reply, err.status, await model(caller, { tokenError: { message: err.detail, ...typed } }));
    }
  });

  app.post('/account/tokens/revoke', async (request, reply) => {
    const caller = await formCaller(request, reply);
    if (caller === undefined) return reply;
    const id = field(request.body, 'id') ?? '';
    const origin = requestOrigin(request, { method: caller.identity.method, reason: 'user_request' });
    if (!isTokenId(id) || !(await tokens.revokeToken(caller.identity.user, id, origin))) return sendProblem(reply, 'not_found', 'No such token.');
    return backToPage(reply, 'token-revoked');
  });
}
