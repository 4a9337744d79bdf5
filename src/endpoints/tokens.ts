// API token endpoints (SPEC 6):
//   POST /token {username, password}   DRF obtain_auth_token-compatible: 200 {"token": "<key>"}
//   GET /tokens, POST /tokens, DELETE /tokens/:id   the signed-in user's tokens
//
// DRF's obtain_auth_token returns the user's one token, creating it if absent. The gateway keeps
// only hashes, so it cannot hand an existing token back: every call creates a new token named
// "obtain_auth_token" (still 200 {"token"}), and when the user is at the per-user cap the oldest
// token of that name is revoked to make room. A user with a second factor sends its code as `otp`
// (TOTP or a recovery code); without it the answer is 401 with code mfa_required.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyLogin } from '../credentials/login.js';
import { GatewayError, sendProblem } from '../errors.js';
import { requestOrigin, type AuditOrigin } from '../ops/audit.js';
import type { Identity } from '../pipeline/types.js';
import { acquireMfaService } from '../mfa/service.js';
import type { Runtime } from '../runtime.js';
import { acquireApiTokens, MAX_TOKEN_TTL_MS, MAX_TOKENS_PER_USER, SCOPE_RE, type ApiTokenInfo, type ApiTokenService, type CreatedApiToken } from '../tokens/api-tokens.js';
import { parseDuration } from '../util/duration.js';
import { signedInCaller } from './caller.js';
import { sendOtpRequired, verifyApiOtp } from './mfa.js';

export const OBTAIN_TOKEN_NAME = 'obtain_auth_token';
const MAX_NAME_LENGTH = 100;
const MAX_SCOPES = 50;
const MAX_FIELD_LENGTH = 4096;
/** Query parameters that would put a credential in URLs and logs. */
const CREDENTIAL_PARAMS = ['password', 'token', 'access_token', 'otp'];
const CONTROL = /[\u0000-\u001f\u007f]/;
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Body = Record<string, unknown>;

function bodyOf(request: FastifyRequest): Body {
  const body = request.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new GatewayError('bad_request', 'The body must be a JSON object or a form.');
  return body as Body;
}

const own = (body: Body, name: string): unknown => (Object.hasOwn(body, name) ? body[name] : undefined);

function requiredString(body: Body, name: string): string {
  const value = own(body, name);
  if (value === undefined || value === '') throw new GatewayError('bad_request', `The field "${name}" is required.`);
  if (typeof value !== 'string' || value.length > MAX_FIELD_LENGTH) throw new GatewayError('bad_request', `The field "${name}" must be a string.`);
  return value;
}

function refuseQueryCredentials(request: FastifyRequest): void {
  const query = request.query;
  if (typeof query !== 'object' || query === null) return;
  for (const name of CREDENTIAL_PARAMS) {
    if (Object.hasOwn(query, name)) throw new GatewayError('bad_request', 'Credentials are not accepted in the query string.');
  }
}

/** `name`: 1-100 printable characters. */
function tokenName(body: Body): string {
  const value = own(body, 'name');
  if (typeof value !== 'string') throw new GatewayError('bad_request', 'The field "name" is required (1-100 characters).');
  const name = value.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || CONTROL.test(name)) throw new GatewayError('bad_request', 'The field "name" must be 1-100 printable characters.');
  return name;
}

/** `ttl`: a duration (`30d`) or a number of seconds, from 1 s to 365 d; absent = tokens.defaultTtl. */
function tokenTtlMs(body: Body): number | undefined {
  const value = own(body, 'ttl');
  if (value === undefined || value === null || value === '') return undefined;
  let ms: number;
  try {
    if (typeof value === 'number') ms = parseDuration(String(value));
    else if (typeof value === 'string' && value.length <= 32) ms = parseDuration(value.trim());
    else throw new Error('not a duration');
  } catch {
    throw new GatewayError('bad_request', 'The field "ttl" must be a duration such as 30d, or a number of seconds.');
  }
  if (!(ms >= 1000 && ms <= MAX_TOKEN_TTL_MS)) throw new GatewayError('bad_request', 'The field "ttl" must be between 1 second and 365 days.');
  return ms;
}

/** `scopes`: an array of scope tokens (RFC 6749 3.3), or one space- or comma-separated string (forms). */
export function parseScopes(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  const items = typeof value === 'string' ? value.split(/[\s,]+/).filter((s) => s.length > 0) : value;
  if (!Array.isArray(items) || items.length > MAX_SCOPES || !items.every((s): s is string => typeof s === 'string' && SCOPE_RE.test(s))) {
    throw new GatewayError('bad_request', `The field "scopes" must be a list of at most ${MAX_SCOPES} scope names.`);
  }
  return [...new Set(items)];
}

/** A token request's fields (`name`, `ttl`, `scopes`), validated: the /tokens rules, shared with the account page. */
export function parseTokenRequest(body: Body): { name: string; ttlMs: number | undefined; scopes: string[] } {
  return { name: tokenName(body), ttlMs: tokenTtlMs(body), scopes: parseScopes(own(body, 'scopes')) };
}

/**
 * A signed-in user creates one of their own tokens (POST /tokens and the account page): the one
 * place for the rules of what a user may ask for. Throws GatewayError (400 bad field, 403).
 */
export async function createOwnToken(service: ApiTokenService, config: Runtime['ctx']['config'], caller: Identity, body: Body, origin: AuditOrigin): Promise<CreatedApiToken> {
  // A token must not mint tokens: a leaked, narrowly scoped token could otherwise widen itself.
  if (caller.method === 'token') throw new GatewayError('forbidden', 'API tokens cannot create API tokens; sign in first.');
  const { name, ttlMs, scopes } = parseTokenRequest(body);
  // A user may give their token only the scopes their groups may grant (issue 9.6).
  const grantable = grantableScopes(config, caller.groups);
  const refused = scopes.filter((s) => !grantable.has(s));
  if (refused.length > 0) throw new GatewayError('forbidden', `You may not grant these scopes: ${refused.join(' ')}.`);
  // The token is no fresher than the sign-in behind it: a stale session cannot mint a way past require.maxAge (issue 9.9).
  return service.createToken({ user: caller.user, name, ttlMs, scopes, authTime: caller.authTime }, origin);
}

/** A token id as the service issues them (a UUID); anything else names no token. */
export const isTokenId = (id: string): boolean => ID_RE.test(id);

/** Scopes members of `groups` may put on their own tokens (`tokens.grantableScopes`, default none). */
export function grantableScopes(config: Runtime['ctx']['config'], groups: readonly string[]): Set<string> {
  const byGroup = config.tokens?.grantableScopes ?? {};
  const out = new Set<string>();
  for (const group of groups) if (Object.hasOwn(byGroup, group)) for (const scope of byGroup[group] ?? []) out.add(scope);
  return out;
}

/** The wire form of a token's metadata (times in epoch seconds, like /me's authTime); never the secret. */
export function tokenView(t: ApiTokenInfo): Record<string, unknown> {
  return { id: t.id, name: t.name, scopes: t.scopes, createdAt: t.createdAt, expiresAt: t.expiresAt, lastUsedAt: t.lastUsedAt };
}

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

/** Makes room for one more obtain_auth_token token by revoking the user's oldest one of that name. */
async function makeRoomForObtainedToken(service: ApiTokenService, user: string, origin: AuditOrigin): Promise<void> {
  const tokens = await service.listTokens(user);
  if (tokens.length < MAX_TOKENS_PER_USER) return;
  const oldest = tokens.find((t) => t.name === OBTAIN_TOKEN_NAME);
  if (oldest !== undefined) await service.revokeToken(user, oldest.id, { ...origin, reason: 'replaced' });
}

export default async function tokenEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { ctx } = rt;
  const mfa = acquireMfaService(ctx);
  rt.onClose(mfa.release);
  const { service, release } = acquireApiTokens(ctx);
  rt.onClose(release);

  app.post('/token', async (request, reply) => {
    refuseQueryCredentials(request);
    const body = bodyOf(request);
    const username = requiredString(body, 'username');
    const password = requiredString(body, 'password');
    const otpValue = own(body, 'otp');
    if (otpValue !== undefined && (typeof otpValue !== 'string' || otpValue.length > 64)) throw new GatewayError('bad_request', 'The field "otp" must be a string.');
    const ip = rt.toAuthRequest(request).ip;
    const check = await verifyLogin(ctx, username, password, ip, { method: 'token-endpoint' });
    if (!check.ok) {
      const headers = check.code === 'locked' && check.retryAfterSeconds !== undefined ? { 'retry-after': String(check.retryAfterSeconds) } : undefined;
      return sendProblem(reply, check.code, undefined, headers);
    }
    if ((await mfa.service.loginMethods(check.user)) !== undefined) {
      if (otpValue === undefined || otpValue === '') return sendOtpRequired(reply);
      const second = await verifyApiOtp(mfa.service, rt, check.user, otpValue, ip);
      if (!second.ok) return sendProblem(reply, second.code, undefined, second.retryAfterSeconds !== undefined ? { 'retry-after': String(second.retryAfterSeconds) } : undefined);
    }
    const origin = requestOrigin(request, { method: 'password' });
    await makeRoomForObtainedToken(service, check.user.username, origin);
    const created = await service.createToken({ user: check.user.username, name: OBTAIN_TOKEN_NAME }, origin);
    return noStore(reply).code(200).send({ token: created.token });
  });

  app.get('/tokens', async (request, reply) => {
    const caller = await signedInCaller(rt, request, reply);
    if (caller === undefined) return reply;
    const tokens = await service.listTokens(caller.user);
    return noStore(reply).send({ tokens: tokens.map(tokenView) });
  });

  app.post('/tokens', async (request, reply) => {
    const caller = await signedInCaller(rt, request, reply);
    if (caller === undefined) return reply;
    const created = await createOwnToken(service, ctx.config, caller, bodyOf(request), requestOrigin(request, { method: caller.method }));
    return noStore(reply)
      .code(201)
      .send({ ...tokenView({ ...created, lastUsedAt: null }), token: created.token });
  });

  app.delete<{ Params: { id: string } }>('/tokens/:id', async (request, reply) => {
    const caller = await signedInCaller(rt, request, reply);
    if (caller === undefined) return reply;
    const id = request.params.id;
    if (!isTokenId(id) || !(await service.revokeToken(caller.user, id, requestOrigin(request, { method: caller.method, reason: 'user_request' })))) return sendProblem(reply, 'not_found', 'No such token.');
    return noStore(reply).code(204).send();
  });
}
