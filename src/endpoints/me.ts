// `GET /me` (SPEC 6): who the caller is, from the session cookie, a gateway API token or a
// gateway JWT. Never returns a provider's tokens (THREATS 49).
import type { FastifyInstance } from 'fastify';
import { sendProblem } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { acquireSessionService } from '../sessions/service.js';
import { identityJson } from './login.js';

export default async function meEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { service, release } = acquireSessionService(rt.ctx);
  rt.onClose(release);
  const cookieName = service.cookieName;

  app.get('/me', async (request, reply) => {
    const outcome = await rt.authenticateCaller(request);
    if (outcome.kind === 'identity') return reply.header('cache-control', 'no-store').send(identityJson(outcome.identity));
    if (outcome.kind === 'reject') return sendProblem(reply, outcome.code, outcome.detail, outcome.headers);
    // A session cookie that resolves to nothing live is cleared (SPEC 4); a bad signature costs
    // no store lookup, and a live one answered above already.
    const presented = request.cookies[cookieName];
    if (presented !== undefined) {
      const lookup = await service.resolveCookie(presented).catch(() => undefined);
      if (lookup?.kind === 'absent' && lookup.clear) {
        const { maxAge: _ignored, ...attributes } = service.cookieOptions();
        reply.clearCookie(cookieName, attributes);
      }
    }
    return sendProblem(reply, 'unauthenticated');
  });
}
