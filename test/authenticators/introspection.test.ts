// The introspection authenticator against a real authorization server (oidc-provider 9):
// client-credentials opaque access tokens, introspected with client_secret_basic.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryStore } from '../../src/store/memory.js';
import { createIntrospectionAuthenticator } from '../../src/pipeline/authenticators/introspection.js';
import type { AuthOutcome } from '../../src/pipeline/types.js';
import { authRequest, makeContext, waitFor } from '../tokens/_fixtures.js';

// oidc-provider ships no type declarations: load it untyped and describe the little used here.
type RequestListener = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
type ProviderCtor = new (issuer: string, configuration: Record<string, unknown>) => { callback(): RequestListener };
const oidcProvider = 'oidc-provider';
const { default: Provider } = (await import(oidcProvider)) as { default: ProviderCtor };

const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

t.test('opaque client-credentials tokens of oidc-provider', async (t) => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(base, {
    clients: [
      { client_id: 'orders-app', client_secret: 'orders-app-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'orders:read orders:write' },
      { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    ],
    scopes: ['orders:read', 'orders:write'],
    features: { clientCredentials: { enabled: true }, introspection: { enabled: true }, revocation: { enabled: true }, devInteractions: { enabled: false } },
    cookies: { keys: ['test-cookie-key-0123456789abcdef0123'] },
    ttl: { ClientCredentials: 600 },
  });
  server.on('request', provider.callback());
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const discovery = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as Record<string, string>;
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const getToken = async (scope: string): Promise<{ access_token: string; expires_in: number }> => {
    const res = await fetch(discovery.token_endpoint!, {
      method: 'POST',
      headers: { ...form, authorization: basic('orders-app', 'orders-app-secret') },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
    });
    t.equal(res.status, 200);
    return (await res.json()) as { access_token: string; expires_in: number };
  };

  const store = new MemoryStore();
  const ctx = makeContext(store);
  const auth = createIntrospectionAuthenticator(
    'as',
    { type: 'introspection', endpoint: discovery.introspection_endpoint!, clientId: 'gateway', clientSecret: 'gateway-secret', cacheTtl: '1s' },
    ctx,
  );
  const wrongSecret = createIntrospectionAuthenticator(
    'as-bad',
    { type: 'introspection', endpoint: discovery.introspection_endpoint!, clientId: 'gateway', clientSecret: 'not-the-secret' },
    ctx,
  );
  t.teardown(async () => {
    await auth.close?.();
    await wrongSecret.close?.();
    await store.close();
  });

  const tok = await getToken('orders:read');
  t.notMatch(tok.access_token, /\./, 'an opaque token, not a JWT');
  const out = await auth.authenticate(authRequest({ authorization: `Bearer ${tok.access_token}` }));
  t.equal(out.kind, 'identity');
  if (out.kind === 'identity') {
    t.equal(out.identity.user, 'orders-app', 'client_id when the token has no username or sub');
    t.same(out.identity.scopes, ['orders:read']);
    t.equal(out.identity.method, 'introspection');
    t.ok(out.identity.expiresAt !== undefined && Math.abs(out.identity.expiresAt - (Math.floor(Date.now() / 1000) + tok.expires_in)) <= 5);
  }

  t.equal(code(await auth.authenticate(authRequest({ authorization: 'Bearer madeUpTokenValue123' }))), 'invalid_token');
  t.equal(
    code(await wrongSecret.authenticate(authRequest({ authorization: `Bearer ${tok.access_token}` }))),
    'service_unavailable',
    'the AS refusing the gateway client is an error, not a verdict on the token',
  );

  // Revoked at the AS: refused once the 1 s cache entry has gone.
  const revoke = await fetch(discovery.revocation_endpoint!, {
    method: 'POST',
    headers: { ...form, authorization: basic('orders-app', 'orders-app-secret') },
    body: new URLSearchParams({ token: tok.access_token }),
  });
  t.equal(revoke.status, 200);
  t.ok(await waitFor(async () => code(await auth.authenticate(authRequest({ authorization: `Bearer ${tok.access_token}` }))) === 'invalid_token', 4000, 100));
});
