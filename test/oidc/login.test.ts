// OIDC sign-in against a real OpenID Provider (oidc-provider 9): the session it creates, what the
// upstream receives, and the audit line.
import t from 'tap';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { browse } from '../helpers/oidc.js';
import { oidcRig, oidcSignIn } from './_setup.js';

t.test('sign in through the provider: a gateway session with method oidc:corp reaches the protected URL', async (t) => {
  const rig = await oidcRig(t);
  rig.op.accounts.set('alice', { email: 'alice@example.test', email_verified: true, preferred_username: 'alice', groups: ['staff', 'dev'] });
  const { jar, last } = await oidcSignIn(rig, 'alice');
  t.equal(last.status, 200, last.body.slice(0, 200));
  t.equal(last.url, `${rig.gw.url}/app/x`, 'landed on the protected URL');
  const echoed = JSON.parse(last.body) as { headers: Record<string, string> };
  t.equal(echoed.headers['x-auth-user'], 'alice');
  t.equal(echoed.headers['x-auth-email'], 'alice@example.test');
  t.equal(echoed.headers['x-auth-groups'], 'staff,dev');
  t.equal(echoed.headers['x-auth-method'], 'oidc:corp');
  t.equal(echoed.headers['x-auth-mfa'], 'false');
  t.notOk(JSON.stringify(echoed.headers).includes('eyJ'), 'no provider token is forwarded');
  t.ok(jar.get('authgate_session'), 'session cookie set');
  const me = await browse(jar, `${rig.gw.url}/.auth/me`, { headers: { accept: 'application/json' } });
  t.equal(JSON.parse(me.body).method, 'oidc:corp');
  const line = rig.gw.logs.find((l) => l.event === 'oidc.login');
  t.ok(line, 'audit oidc.login');
  t.equal(line?.user, 'alice');
  t.notOk(rig.gw.rawLogs.some((l) => l.includes('gateway-secret')), 'client secret never logged');
});

t.test('client authentication private_key_jwt (and client_secret_post in providers.test.ts)', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'gw-key', alg: 'ES256', use: 'sig' };
  const rig = await oidcRig(t, {
    auth: { clientAuth: 'private_key_jwt', privateKey: await exportPKCS8(privateKey) },
    client: { client_secret: undefined, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [jwk] } } as Record<string, unknown>,
  });
  const { last } = await oidcSignIn(rig, 'alice');
  t.equal(last.status, 200, 'the token endpoint accepted the signed client assertion');
  t.equal((JSON.parse(last.body) as { headers: Record<string, string> }).headers['x-auth-user'], 'alice');
});

t.test('rd and redirect_uri: an outside rd becomes /, the redirect URI never comes from Host; flow cookie attributes', async (t) => {
  const rig = await oidcRig(t);
  const start = await fetch(`${rig.gw.url}/.auth/oidc/corp/login?rd=${encodeURIComponent('https://evil.test/x')}`, { redirect: 'manual', headers: { host: 'evil.test', 'x-forwarded-host': 'evil.test' } });
  t.equal(start.status, 302);
  const auth = new URL(start.headers.get('location') ?? '');
  t.equal(auth.searchParams.get('redirect_uri'), `${rig.gw.url}/.auth/oidc/corp/callback`, 'built from publicUrl');
  t.equal(auth.searchParams.get('code_challenge_method'), 'S256');
  t.ok((auth.searchParams.get('code_challenge') ?? '').length >= 43, 'a PKCE challenge');
  const flowCookie = start.headers.getSetCookie().find((c) => c.startsWith('authgate_oidc_flow='));
  t.match(flowCookie, /HttpOnly/i);
  t.match(flowCookie, /SameSite=Lax/i);
  t.match(flowCookie, /Max-Age=600/i);
  t.notMatch(flowCookie, /Domain=/i);

  const { jar, last } = await oidcSignIn(rig, 'alice', 'https://evil.test/x');
  t.equal(last.url, `${rig.gw.url}/`, 'signed in, but sent to / and not to the outside rd');
  const me = await browse(jar, `${rig.gw.url}/.auth/me`, { headers: { accept: 'application/json' } });
  t.notMatch(me.body, /eyJ/, '/me shows no provider token');
});
