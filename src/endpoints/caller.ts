// Who is calling one of the gateway's self-service endpoints (/tokens, /sessions): the session
// cookie, a gateway API token or a gateway JWT, with the CSRF rule for cookie-authenticated
// unsafe requests (SPEC 4 step 6). One check, so these endpoints cannot drift apart.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendProblem } from '../errors.js';
import { passesCsrfCheck } from '../pipeline/csrf.js';
import type { Identity } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';

/** True when the identity came from the browser session cookie (password or OIDC sign-in). */
export function isCookieIdentity(identity: Pick<Identity, 'method'>): boolean {
  return identity.method === 'session' || identity.method.startsWith('oidc:');
}

/**
 * The signed-in user calling a self-service endpoint. Replies (and returns undefined) when there
 * is none, it is refused, a cookie-authenticated unsafe request is cross-site, or the caller is
 * an OAuth client rather than a user.
 */
export async function signedInCaller(rt: Runtime, request: FastifyRequest, reply: FastifyReply): Promise<Identity | undefined> {
  const outcome = await rt.authenticateCaller(request);
  if (outcome.kind === 'reject') {
    sendProblem(reply, outcome.code, outcome.detail, outcome.headers);
    return undefined;
  }
  if (outcome.kind === 'not-mine') {
    sendProblem(reply, 'unauthenticated');
    return undefined;
  }
  const identity = outcome.identity;
  if (isCookieIdentity(identity) && !passesCsrfCheck(request.method, request.headers, rt.ctx)) {
    sendProblem(reply, 'csrf');
    return undefined;
  }
  // A client-credentials token names an OAuth client, not a user who could own tokens or sessions.
  if (identity.amr.includes('client')) {
    sendProblem(reply, 'forbidden', 'OAuth client tokens cannot manage a user account.');
    return undefined;
  }
  return identity;
}
