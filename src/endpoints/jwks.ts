// GET /jwks.json and GET /.well-known/openid-configuration (SPEC 6): the gateway's public signing
// keys and its issuer metadata (RFC 8414; the OpenID Discovery names where they coincide).
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import { selfIssuer } from '../tokens/jwt-issuer.js';

export default async function jwksEndpoints(app: FastifyInstance, rt: Runtime): Promise<void> {
  const { ctx } = rt;
  const issuer = selfIssuer(ctx);
  const jwks = JSON.stringify(ctx.signing.jwks());
  const algs = [...new Set(ctx.signing.jwks().keys.map((k) => k.alg))];
  const metadata = JSON.stringify({
    issuer,
    jwks_uri: `${issuer}/jwks.json`,
    token_endpoint: `${issuer}/oauth/token`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    // No authorization endpoint: client credentials is the only OAuth grant (RFC 8414 §2).
    grant_types_supported: ['client_credentials'],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: algs,
  });

  // Keys rotate by config reload: a short public cache lets verifiers pick up a new key quickly.
  app.get('/jwks.json', async (_request, reply) =>
    reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'public, max-age=300').send(jwks),
  );
  app.get('/.well-known/openid-configuration', async (_request, reply) =>
    reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'public, max-age=300').send(metadata),
  );
}
