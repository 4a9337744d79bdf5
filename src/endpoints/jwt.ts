// simplejwt-compatible endpoints (SPEC 6): POST /jwt/token, /jwt/refresh, /jwt/verify, /jwt/revoke.
// Bodies are JSON or form-encoded; answers are always JSON and never cached. Credentials are read
// from the body only: one in the query string is refused (THREATS 52, okpy/ok-client#286).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyLogin } from '../credentials/login.js';
import { GatewayError, sendProblem } from '../errors.js';
import { requestOrigin } from '../ops/audit.js';
import { acquireMfaService } from '../mfa/service.js';
import type { Runtime } from '../runtime.js';
import { nowSeconds } from '../tokens/jwt-issuer.js';
import { JwtService } from '../tokens/refresh.js';
import { sendOtpRequired, verifyApiOtp } from './mfa.js';

/** Query parameters that would put a credential in URLs and logs. */
const CREDENTIAL_PARAMS = ['refresh', 'token', 'access', 'access_token', 'refresh_token', 'password', 'otp'];
const MAX_FIELD_LENGTH = 16 * 1024;

function refuseQueryCredentials(request: FastifyRequest): void {
  const query = request.query;
  if (typeof query !== 'object' || query === null) return;
  for (const name of CREDENTIAL_PARAMS) {
    if (Object.hasOwn(query, name)) throw new GatewayError('bad_request', 'Credentials are not accepted in the query string.');
  }
}

/** A string field of a JSON or form body; absent → undefined, anything but a bounded string → 400. */
function field(request: FastifyRequest, name: string, required: true): string;
function field(request: FastifyRequest, name: string, required: false): string | undefined;
function field(request: FastifyRequest, name: string, required: boolean): string | undefined {
  const body = request.body;
  const value = typeof body === 'object' && body !== null && !Array.isArray(body) && Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
  if (value === undefined) {
    if (required) throw new GatewayError('bad_request', `The field "${name}" is required.`);
    return undefined;
  }
  if (typeof value !== 'string' || value.length > MAX_FIELD_LENGTH) throw new GatewayError('bad_request', `The field "${name}" must be a string.`);
  return value;
}

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

export default async function jwtEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { ctx } = rt;
  const service = new JwtService(ctx);
  rt.onClose(() => service.close());
  const mfa = acquireMfaService(ctx);
  rt.onClose(mfa.release);

  app.post('/jwt/token', async (request, reply) => {
    refuseQueryCredentials(request);
    const username = field(request, 'username', true);
    const password = field(request, 'password', true);
    const otp = field(request, 'otp', false);
    const ip = rt.toAuthRequest(request).ip;
    const check = await verifyLogin(ctx, username, password, ip, { method: 'jwt-endpoint' });
    if (!check.ok) {
      const headers = check.code === 'locked' && check.retryAfterSeconds !== undefined ? { 'retry-after': String(check.retryAfterSeconds) } : undefined;
      return sendProblem(reply, check.code, undefined, headers);
    }
    // A user with a second factor sends its code as `otp` (TOTP or a recovery code).
    const methods = await mfa.service.loginMethods(check.user);
    let amr = ['pwd'];
    if (methods !== undefined) {
      if (otp === undefined || otp === '') return sendOtpRequired(reply);
      const second = await verifyApiOtp(mfa.service, rt, check.user, otp, ip);
      if (!second.ok) return sendProblem(reply, second.code, undefined, second.retryAfterSeconds !== undefined ? { 'retry-after': String(second.retryAfterSeconds) } : undefined);
      amr = ['pwd', second.factor];
    }
    const pair = await service.issueForLogin(check.user, { amr, authTime: nowSeconds() });
    return noStore(reply).send(pair);
  });

  app.post('/jwt/refresh', async (request, reply) => {
    refuseQueryCredentials(request);
    const pair = await service.refresh(field(request, 'refresh', true));
    return noStore(reply).send(pair);
  });

  app.post('/jwt/verify', async (request, reply) => {
    refuseQueryCredentials(request);
    await service.verify(field(request, 'token', true));
    return noStore(reply).send({});
  });

  app.post('/jwt/revoke', async (request, reply) => {
    refuseQueryCredentials(request);
    await service.revoke(field(request, 'refresh', true), requestOrigin(request));
    return noStore(reply).send({});
  });
}
