// `session`: the browser session cookie (SPEC 4 step 4). Mine only when the cookie resolves to a
// live, correctly signed session; anything else counts as absent and the cookie is cleared
// (THREATS 28: a bad signature is refused without a store lookup). A session that still waits
// for its second factor is never an identity (THREATS 35); it is left in place for the MFA step.
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import type { GatewayContext } from '../../context.js';
import { GatewayError } from '../../errors.js';
import { acquireSessionService, type SessionService } from '../../sessions/service.js';
import type { SessionLookup, SessionRecord } from '../../sessions/types.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Identity } from '../types.js';

/** The identity a live session stands for. */
export function sessionIdentity(session: SessionRecord, authenticator: string, absoluteMs: number): Identity {
  return {
    user: session.user,
    email: session.email,
    groups: session.groups,
    scopes: [],
    method: session.method,
    authenticator,
    mfa: session.mfa,
    amr: session.amr,
    authTime: session.authTime,
    subject: session.oidc !== undefined ? `${session.oidc.provider}:${session.oidc.sub}` : session.user,
    sessionId: session.id,
    expiresAt: Math.floor((session.createdAt + absoluteMs) / 1000),
  };
}

/**
 * Resolves the request's session cookie to an outcome; shared by the authenticator and /login.
 * Synchronous for a warm session (SessionService.resolveCookieNow), else it asks the store.
 */
export function authenticateSession(service: SessionService, request: AuthRequest, name: string): AuthOutcome | Promise<AuthOutcome> {
  const cookieName = service.cookieName;
  const value = request.cookies[cookieName];
  if (value === undefined) return NOT_MINE;
  const now = service.resolveCookieNow(value);
  return now !== undefined ? outcomeOf(service, request, name, now) : resolveFromStore(service, request, name, value);
}

async function resolveFromStore(service: SessionService, request: AuthRequest, name: string, value: string): Promise<AuthOutcome> {
  let lookup;
  try {
    lookup = await service.resolveCookie(value);
  } catch (err) {
    if (err instanceof GatewayError) return rejected(err.code);
    throw err;
  }
  return outcomeOf(service, request, name, lookup);
}

function outcomeOf(service: SessionService, request: AuthRequest, name: string, lookup: SessionLookup): AuthOutcome {
  switch (lookup.kind) {
    case 'active':
      return authenticated(sessionIdentity(lookup.session, name, service.settings.absoluteMs));
    case 'pending':
      return NOT_MINE;
    case 'absent':
      if (lookup.clear) request.clearCookie?.(service.cookieName);
      return NOT_MINE;
  }
}

export function createSessionAuthenticator(name: string, _cfg: AuthenticatorConfigOf<'session'>, ctx: GatewayContext): Authenticator {
  const { service, release } = acquireSessionService(ctx);
  return {
    name,
    type: 'session',
    authenticate: (request) => authenticateSession(service, request, name),
    close: release,
  };
}
