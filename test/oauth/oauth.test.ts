// The gateway as an OAuth 2.0 provider, through a running gateway: client-credentials tokens
// accepted by a `jwt` (issuer: self) route, scope subsets, introspection, revocation.
import t from 'tap';
import { callGateway as call } from '../helpers/http.js';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;


const decode = (jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } => {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>, payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown> };
};

t.test('client credentials, introspection and revocation', async (t) => {
  const echo = await startTestEcho(t);
  const [billingHash, reportsHash, alicePw] = await Promise.all([hashPassword('billing-secret'), hashPassword('reports-secret'), hashPassword('alice-pw')]);
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      oauth: {
        clients: [
          { id: 'billing', secretHash: billingHash, scopes: ['invoices:read', 'invoices:write'], tokenTtl: '10m' },
          { id: 'reports', secretHash: reportsHash, scopes: ['reports:read'], tokenTtl: '2m' },
        ],
      },
      authenticators: { 'local-jwt': { type: 'jwt', issuer: 'self' }, 'api-token': { type: 'token' } },
      routes: [
        { name: 'invoices', match: { path: '/invoices/**' }, upstream: echo.url, auth: ['local-jwt'], require: { scopes: ['invoices:write'] } },
        { name: 'svc', match: { path: '/svc/**' }, upstream: echo.url, auth: ['local-jwt', 'api-token'] },
      ],
    },
    { files: { 'users.yaml': stringify({ users: { alice: { password: alicePw } } }) } },
  );
  const tokenFor = async (auth: Record<string, string>, body: string) => call(gw, '/.auth/oauth/token', { method: 'POST', headers: { ...form, ...auth }, body });

  // --- issuance ---
  const issued = await tokenFor({ authorization: basic('billing', 'billing-secret') }, 'grant_type=client_credentials');
  t.equal(issued.status, 200);
  t.match(issued.headers['content-type'], /^application\/json/);
  t.equal(issued.headers['cache-control'], 'no-store');
  t.equal(issued.headers.pragma, 'no-cache');
  t.match(issued.body, { token_type: 'Bearer', expires_in: 600, scope: 'invoices:read invoices:write' });
  const full = issued.body.access_token as string;
  const { header, payload } = decode(full);
  t.match(header, { typ: 'at+jwt' });
  t.match(payload, { iss: `${new URL(gw.url).origin}/.auth`, sub: 'billing', client_id: 'billing', scope: 'invoices:read invoices:write', token_use: 'access', amr: ['client'] });
  t.equal((payload.exp as number) - (payload.iat as number), 600);
  t.type(payload.jti, 'string');

  const onRoute = await call(gw, '/invoices/1', { headers: { authorization: `Bearer ${full}` } });
  t.equal(onRoute.status, 200, 'accepted by a jwt issuer: self route');
  const seen = (onRoute.body as { headers: Record<string, string> }).headers;
  t.equal(seen['x-auth-user'], 'billing');
  t.equal(seen['x-auth-method'], 'jwt');
  t.equal(seen['x-auth-scopes'], 'invoices:read invoices:write');

  const readOnly = await tokenFor({}, 'grant_type=client_credentials&scope=invoices%3Aread&client_id=billing&client_secret=billing-secret');
  t.equal(readOnly.status, 200, 'form client authentication');
  t.equal(readOnly.body.scope, 'invoices:read', 'a subset of the client scopes');
  const forbidden = await call(gw, '/invoices/1', { headers: { authorization: `Bearer ${readOnly.body.access_token as string}` } });
  t.equal(forbidden.status, 403, 'require.scopes still applies');
  t.match(forbidden.body, { code: 'forbidden' });
  t.equal((await call(gw, '/svc/1', { headers: { authorization: `Bearer ${readOnly.body.access_token as string}` } })).status, 200);

  const badScope = await tokenFor({ authorization: basic('billing', 'billing-secret') }, 'grant_type=client_credentials&scope=invoices%3Aread+admin');
  t.equal(badScope.status, 400);
  t.same(badScope.body.error, 'invalid_scope');
  const otherClientsScope = await tokenFor({ authorization: basic('reports', 'reports-secret') }, 'grant_type=client_credentials&scope=invoices%3Awrite');
  t.same(otherClientsScope.body.error, 'invalid_scope');

  const unsupported = await tokenFor({ authorization: basic('billing', 'billing-secret') }, 'grant_type=password&username=alice&password=alice-pw');
  t.equal(unsupported.status, 400);
  t.same(unsupported.body.error, 'unsupported_grant_type');
  const missing = await tokenFor({ authorization: basic('billing', 'billing-secret') }, '');
  t.same(missing.body.error, 'invalid_request');

  // --- client authentication failures (RFC 6749 5.2) ---
  for (const [auth, body, status, error] of [
    [{ authorization: basic('billing', 'wrong') }, 'grant_type=client_credentials', 401, 'invalid_client'],
    [{ authorization: basic('nobody', 'billing-secret') }, 'grant_type=client_credentials', 401, 'invalid_client'],
    [{}, 'grant_type=client_credentials', 401, 'invalid_client'],
    [{}, 'grant_type=client_credentials&client_id=billing&client_secret=wrong', 401, 'invalid_client'],
    [{ authorization: basic('billing', 'billing-secret') }, 'grant_type=client_credentials&client_secret=billing-secret', 400, 'invalid_request'],
  ] as const) {
    const r = await tokenFor(auth, body);
    t.equal(r.status, status, `${body} -> ${status}`);
    t.same(Object.keys(r.body).sort(), ['error', 'error_description']);
    t.equal(r.body.error, error);
    t.match(r.headers['content-type'], /^application\/json/);
    if (status === 401) t.equal(r.headers['www-authenticate'], 'Basic realm="authgate"');
    t.notOk(r.text.includes('secret'), 'no secret echoed');
  }
  const queryCreds = await call(gw, '/.auth/oauth/token?client_secret=billing-secret', { method: 'POST', headers: { ...form, authorization: basic('billing', 'billing-secret') }, body: 'grant_type=client_credentials' });
  t.equal(queryCreds.status, 400);
  const jsonBody = await call(gw, '/.auth/oauth/token', { method: 'POST', headers: { ...json, authorization: basic('billing', 'billing-secret') }, body: JSON.stringify({ grant_type: 'client_credentials' }) });
  t.equal(jsonBody.status, 200, 'JSON bodies are accepted too (SPEC 6)');

  // --- introspection ---
  const introspect = (token: string, auth = basic('reports', 'reports-secret')) =>
    call(gw, '/.auth/oauth/introspect', { method: 'POST', headers: { ...form, authorization: auth }, body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString() });
  const active = await introspect(full);
  t.equal(active.status, 200);
  t.equal(active.headers['cache-control'], 'no-store');
  t.match(active.body, { active: true, sub: 'billing', client_id: 'billing', username: 'billing', scope: 'invoices:read invoices:write', exp: payload.exp, iat: payload.iat, token_type: 'Bearer' });
  t.same((await introspect('not-a-token')).body, { active: false });
  t.same((await introspect(`${full.slice(0, -4)}AAAA`)).body, { active: false }, 'a bad signature');
  t.equal((await introspect(full, basic('reports', 'wrong'))).status, 401, 'client authentication is required');
  const noToken = await call(gw, '/.auth/oauth/introspect', { method: 'POST', headers: { ...form, authorization: basic('reports', 'reports-secret') }, body: '' });
  t.equal(noToken.status, 400);
  t.equal(noToken.body.error, 'invalid_request');
  const oddHint = await call(gw, '/.auth/oauth/introspect', { method: 'POST', headers: { ...form, authorization: basic('reports', 'reports-secret') }, body: `token=${full}&token_type_hint=weird` });
  t.equal(oddHint.body.active, true, 'the hint is only a hint');

  const apiToken = (await call(gw, '/.auth/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) })).body.token as string;
  const apiActive = await introspect(apiToken);
  t.match(apiActive.body, { active: true, sub: 'alice', username: 'alice', scope: '', token_type: 'Bearer' });
  t.type(apiActive.body.exp, 'number');

  const pair = await call(gw, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.match((await introspect(pair.body.access as string)).body, { active: true, sub: 'alice' }, "a user's gateway access token");
  t.same((await introspect(pair.body.refresh as string)).body, { active: false }, 'refresh tokens are not reported as active access tokens');

  // --- revocation ---
  const revoke = (token: string, auth = basic('billing', 'billing-secret')) =>
    call(gw, '/.auth/oauth/revoke', { method: 'POST', headers: { ...form, authorization: auth }, body: new URLSearchParams({ token }).toString() });
  const notMine = await revoke(full, basic('reports', 'reports-secret'));
  t.equal(notMine.status, 400, "another client's token");
  t.equal(notMine.body.error, 'unauthorized_client');
  t.equal((await call(gw, '/invoices/1', { headers: { authorization: `Bearer ${full}` } })).status, 200, 'still valid');
  t.equal((await revoke(full, basic('billing', 'nope'))).status, 401);

  const revoked = await revoke(full);
  t.equal(revoked.status, 200);
  t.equal(revoked.headers['cache-control'], 'no-store');
  const afterRevoke = await call(gw, '/invoices/1', { headers: { authorization: `Bearer ${full}` } });
  t.equal(afterRevoke.status, 401);
  t.match(afterRevoke.body, { code: 'token_revoked' });
  t.same((await introspect(full)).body, { active: false });
  t.equal((await revoke(full)).status, 200, 'revoking again is fine');
  t.equal((await revoke('unknown-token')).status, 200, 'unknown tokens get 200 (RFC 7009 2.2)');

  // RFC 7009 2.1 (issue 9.12): a user's API token or refresh token was issued to no client.
  t.equal((await call(gw, '/svc/1', { headers: { authorization: `Token ${apiToken}` } })).status, 200);
  const apiRevoke = await revoke(apiToken);
  t.equal(apiRevoke.status, 400, "a user's API token is not the client's to revoke");
  t.equal(apiRevoke.body.error, 'unauthorized_client');
  t.equal((await call(gw, '/svc/1', { headers: { authorization: `Token ${apiToken}` } })).status, 200, 'the API token still works');
  t.match((await introspect(apiToken)).body, { active: true });

  t.equal((await revoke(pair.body.refresh as string)).status, 400, "a user's refresh token is not the client's to revoke");
  t.equal((await call(gw, '/svc/1', { headers: { authorization: `Bearer ${pair.body.access as string}` } })).status, 200, "the family's access token still works");
  t.equal((await revoke(pair.body.access as string)).status, 400, "nor a user's access token");

  // --- a client token cannot manage API tokens ---
  const clientTok = (await tokenFor({ authorization: basic('reports', 'reports-secret') }, 'grant_type=client_credentials')).body.access_token as string;
  t.equal((await call(gw, '/.auth/tokens', { headers: { authorization: `Bearer ${clientTok}` } })).status, 403);

  // --- nothing secret in the logs ---
  const logs = gw.rawLogs.join('\n');
  for (const secret of ['billing-secret', 'reports-secret', full, apiToken, clientTok]) t.notOk(logs.includes(secret), 'secret not logged');
});
