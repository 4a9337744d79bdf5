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
