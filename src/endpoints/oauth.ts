// The gateway as an OAuth 2.0 provider for machine clients (SPEC 6):
//   POST /oauth/token       client_credentials grant (RFC 6749 4.4) → a gateway JWT access token
//   POST /oauth/introspect  RFC 7662, for gateway JWT access tokens and opaque API tokens
//   POST /oauth/revoke      RFC 7009, for the tokens issued to the calling client only
// Every call needs client authentication. Protocol errors are RFC 6749 5.2 JSON
// (`{error, error_description}`, application/json); gateway failures (store down) stay problem+json.
// Responses are never cached (RFC 6749 5.1).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, sendProblem, StoreUnavailableError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { acquireApiTokens, isWellFormedToken, SCOPE_RE } from '../tokens/api-tokens.js';
import { ACCESS_TYP, newTokenId, nowSeconds, selfIssuer } from '../tokens/jwt-issuer.js';
import { OAuthClients, type OAuthClient, type OAuthError } from '../tokens/oauth-clients.js';
import { JwtService, type OwnToken } from '../tokens/refresh.js';

const MAX_TOKEN_LENGTH = 16 * 1024;
const MAX_SCOPE_LENGTH = 4096;

type OAuthErrorCode = OAuthError['error'] | 'unsupported_grant_type' | 'invalid_scope' | 'unauthorized_client';

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

function oauthError(reply: FastifyReply, status: number, error: OAuthErrorCode, description: string): FastifyReply {
  noStore(reply).code(status).header('content-type', 'application/json; charset=utf-8');
  // RFC 6749 5.2: a failed client authentication over the Authorization header gets a Basic challenge.
  if (status === 401) reply.header('www-authenticate', 'Basic realm="authgate"');
  if (status === 503) reply.header('retry-after', '1');
  return reply.send(JSON.stringify({ error, error_description: description }));
}

function formBody(request: FastifyRequest): Record<string, unknown> | undefined {
  const body = request.body;
  if (body === undefined || body === null) return {};
  return typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
}

const param = (body: Record<string, unknown>, name: string): unknown => (Object.hasOwn(body, name) ? body[name] : undefined);

/** RFC 6749 3.3: the requested scopes, all within the client's; absent = all of the client's. */
function grantedScopes(client: OAuthClient, requested: unknown): string[] | { error: string } {
  if (requested === undefined || requested === '') return [...client.scopes];
  if (typeof requested !== 'string' || requested.length > MAX_SCOPE_LENGTH) return { error: 'The scope parameter is malformed.' };
  const scopes = [...new Set(requested.split(' ').filter((s) => s.length > 0))];
  if (!scopes.every((s) => SCOPE_RE.test(s))) return { error: 'The scope parameter is malformed.' };
  if (!scopes.every((s) => client.scopes.includes(s))) return { error: 'The requested scope exceeds what the client may have.' };
  return scopes;
}

export default async function oauthEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { ctx } = rt;
  const clients = new OAuthClients(ctx);
  const issuer = selfIssuer(ctx);
  const { service: apiTokens, release } = acquireApiTokens(ctx);
  const jwt = new JwtService(ctx);
  rt.onClose(() => {
    release();
    jwt.close();
  });

  /** Client authentication plus the body and the `token` parameter checks shared by the three endpoints. */
  async function authenticateClient(request: FastifyRequest, reply: FastifyReply): Promise<{ client: OAuthClient; body: Record<string, unknown> } | undefined> {
    const body = formBody(request);
    if (body === undefined) {
      oauthError(reply, 400, 'invalid_request', 'The body must be a form.');
      return undefined;
    }
    // Credentials in the query string end up in logs (RFC 6749 2.3.1: the body only).
    const query = request.query as Record<string, unknown> | undefined;
    if (query !== undefined && ['client_secret', 'token', 'access_token'].some((k) => Object.hasOwn(query, k))) {
      oauthError(reply, 400, 'invalid_request', 'Credentials are not accepted in the query string.');
      return undefined;
    }
    const auth = await clients.authenticate(request.headers, body, rt.toAuthRequest(request).ip);
    if (!auth.ok && auth.error === 'locked') {
      // Limited like password guesses (issue 9.12): the same problem+json as a locked login.
      noStore(reply);
      sendProblem(reply, 'locked', 'Too many failed client authentications; try again later.', { 'retry-after': String(auth.retryAfterSeconds) });
      return undefined;
    }
    if (!auth.ok) {
      oauthError(reply, auth.status, auth.error, auth.description);
      return undefined;
    }
    return { client: auth.client, body };
  }

  function tokenParam(body: Record<string, unknown>, reply: FastifyReply): string | undefined {
    const token = param(body, 'token');
    if (typeof token !== 'string' || token.length === 0) {
      oauthError(reply, 400, 'invalid_request', 'The token parameter is required.');
      return undefined;
    }
    return token;
  }

  /** A gateway JWT, verified (signature, exp, typ, denylist, its user). Undefined when not one. */
  async function ownJwt(token: string): Promise<OwnToken | undefined> {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
    try {
      return await jwt.verify(token);
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      if (err instanceof GatewayError && (err.code === 'service_unavailable' || err.code === 'store_unavailable')) throw err;
      return undefined;
    }
  }

  app.post('/oauth/token', async (request, reply) => {
    const authed = await authenticateClient(request, reply);
    if (authed === undefined) return reply;
    const { client, body } = authed;
    const grantType = param(body, 'grant_type');
    if (grantType === undefined || grantType === '') return oauthError(reply, 400, 'invalid_request', 'The grant_type parameter is required.');
    if (grantType !== 'client_credentials') return oauthError(reply, 400, 'unsupported_grant_type', 'Only the client_credentials grant is supported.');
    const scopes = grantedScopes(client, param(body, 'scope'));
    if (!Array.isArray(scopes)) return oauthError(reply, 400, 'invalid_scope', scopes.error);

    const iat = nowSeconds();
    const exp = iat + client.tokenTtlSeconds;
    // RFC 9068 shape, as the `jwt` authenticator with `issuer: self` expects it (typ at+jwt, token_use).
    const payload: Record<string, unknown> = {
      iss: issuer,
      sub: client.id,
      client_id: client.id,
      ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
      jti: newTokenId(),
      iat,
      exp,
      token_use: 'access',
      amr: ['client'],
    };
    const accessToken = ctx.signing.sign(payload, { typ: ACCESS_TYP });
    return noStore(reply).send({ access_token: accessToken, token_type: 'Bearer', expires_in: client.tokenTtlSeconds, scope: scopes.join(' ') });
  });

  app.post('/oauth/introspect', async (request, reply) => {
    const authed = await authenticateClient(request, reply);
    if (authed === undefined) return reply;
    const token = tokenParam(authed.body, reply);
    if (token === undefined) return reply;
    // token_type_hint is only a hint (RFC 7662 2.1): both kinds are tried, whatever it says.
    if (isWellFormedToken(token)) {
      const verdict = await apiTokens.verify(token, ctx.users);
      if (!verdict.ok) return noStore(reply).send({ active: false });
      const { record } = verdict;
      return noStore(reply).send({
        active: true,
        sub: record.user,
        username: record.user,
        scope: record.scopes.join(' '),
        exp: record.expiresAt,
        iat: record.createdAt,
        ...(record.authTime !== undefined ? { auth_time: record.authTime } : {}),
        iss: issuer,
        token_type: 'Bearer',
      });
    }
    const own = await ownJwt(token);
    // Only access tokens: a refresh token reported active could be mistaken for one (THREATS 11).
    if (own === undefined || own.kind !== 'access') return noStore(reply).send({ active: false });
    const p = own.payload;
    const sub = typeof p.sub === 'string' ? p.sub : undefined;
    return noStore(reply).send({
      active: true,
      sub,
      ...(typeof p.client_id === 'string' ? { client_id: p.client_id } : {}),
      username: typeof p.preferred_username === 'string' ? p.preferred_username : sub,
      scope: typeof p.scope === 'string' ? p.scope : '',
      exp: p.exp,
      iat: p.iat,
      iss: issuer,
      jti: own.jti,
      token_type: 'Bearer',
    });
  });

  app.post('/oauth/revoke', async (request, reply) => {
    const authed = await authenticateClient(request, reply);
    if (authed === undefined) return reply;
    const token = tokenParam(authed.body, reply);
    if (token === undefined) return reply;
    // RFC 7009 2.2: an unknown, invalid or already revoked token is answered 200 all the same.
    // RFC 7009 2.1: a client revokes only tokens issued to it. A user's API token or refresh
    // token was issued to no OAuth client, so no client may revoke it here (issue 9.12).
    const notIssuedToCaller = (): FastifyReply => oauthError(reply, 400, 'unauthorized_client', 'The token was not issued to this client.');
    if (isWellFormedToken(token)) {
      const found = await apiTokens.lookup(token);
      return found.status === 'unknown' ? noStore(reply).send({}) : notIssuedToCaller();
    }
    const own = await ownJwt(token);
    if (own !== undefined) {
      // Only client_credentials access tokens carry a client_id; refresh tokens belong to users.
      if (own.kind !== 'access' || own.payload.client_id !== authed.client.id) return notIssuedToCaller();
      await jwt.denylist.revoke('jti', own.jti, own.payload.exp as number);
    }
    return noStore(reply).send({});
  });
}
