// The signed-in user's browser sessions (SPEC 6): `GET /sessions` lists them on every instance,
// `DELETE /sessions/:id` ends one everywhere (the store record goes, and every instance drops it
// from its cache through pub/sub within the 1 s of SPEC 4). `id` is the session's public handle
// (a hash of the cookie's secret id), never the cookie value.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { sendProblem } from '../errors.js';
import { audit, requestOrigin, type AuditOrigin } from '../ops/audit.js';
import type { Runtime } from '../runtime.js';
import { acquireSessionService, type SessionService } from '../sessions/service.js';
import type { SessionRecord } from '../sessions/types.js';
import { signedInCaller } from './caller.js';

/** A session handle: base64url SHA-256 (sessions/cookie.ts `sessionHandle`). */
const HANDLE_RE = /^[A-Za-z0-9_-]{43}$/;

const isSessionHandle = (id: string): boolean => HANDLE_RE.test(id);

/** The wire form of a session (times in epoch seconds, like /tokens and /me). */
function sessionView(s: SessionRecord, currentId: string | undefined): Record<string, unknown> {
  return {
    id: s.id,
    current: s.id === currentId,
    createdAt: Math.floor(s.createdAt / 1000),
    lastSeenAt: Math.floor(s.lastSeenAt / 1000),
    ip: s.ip ?? null,
    userAgent: s.userAgent ?? null,
    method: s.method,
  };
}

/**
 * Ends one of `user`'s sessions on every instance and records `session.revoked` (SPEC 7).
 * False when the handle names no session of this user.
 */
export async function endUserSession(rt: Runtime, service: SessionService, user: string, id: string, origin: AuditOrigin): Promise<boolean> {
  if (!isSessionHandle(id) || !(await service.destroyForUser(user, id))) return false;
  audit(rt.ctx, 'session.revoked', { user, id, reason: 'user_request', ...origin });
  return true;
}

/** Clears the browser's session cookie (after the caller ended its own session). */
export function clearSessionCookie(service: SessionService, reply: FastifyReply): void {
  const { maxAge: _ignored, ...attributes } = service.cookieOptions();
  reply.clearCookie(service.cookieName, attributes);
}

export default async function sessionEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { service, release } = acquireSessionService(rt.ctx);
  rt.onClose(release);

  app.get('/sessions', async (request, reply) => {
    const caller = await signedInCaller(rt, request, reply);
    if (caller === undefined) return reply;
    const sessions = await service.listForUser(caller.user);
    return reply.header('cache-control', 'no-store').send({ sessions: sessions.map((s) => sessionView(s, caller.sessionId)) });
  });

  app.delete<{ Params: { id: string } }>('/sessions/:id', async (request, reply) => {
    const caller = await signedInCaller(rt, request, reply);
    if (caller === undefined) return reply;
    const id = request.params.id;
    if (!(await endUserSession(rt, service, caller.user, id, requestOrigin(request, { method: caller.method })))) return sendProblem(reply, 'not_found', 'No such session.');
    if (id === caller.sessionId) clearSessionCookie(service, reply);
    return reply.header('cache-control', 'no-store').code(204).send();
  });
}
