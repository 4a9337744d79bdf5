// OIDC config checks: every preset shape the README shows loads, and the mistakes that would make
// a provider unusable or unsafe are refused at start with a clear message.
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const ROUTE = (auth: string) => `routes:\n  - { name: r, match: { path: /x }, upstream: http://127.0.0.1:1, auth: ${auth} }\n`;

async function errorsOf(t: Test, yaml: string): Promise<string[]> {
  const dir = t.testdir({ 'authgate.yaml': yaml });
  try {
    await loadConfig(path.join(dir, 'authgate.yaml'), {});
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.errors;
  }
  return [];
}

t.test('the README preset snippets load', async (t) => {
  const yaml = `authenticators:
  web: { type: session }
  google: { type: oidc, preset: google, clientId: id.apps.googleusercontent.com, clientSecret: s, allowedDomains: [example.com] }
  entra: { type: oidc, preset: entra, tenant: 00000000-0000-0000-0000-000000000001, clientId: c, clientSecret: s }
  entra-multi: { type: oidc, preset: entra, tenant: organizations, allowedTenants: [00000000-0000-0000-0000-000000000001], clientId: c, clientSecret: s }
  keycloak: { type: oidc, preset: keycloak, issuer: https://kc.example.com/realms/main, clientId: c, clientSecret: s, allowedGroups: [staff] }
  gitlab: { type: oidc, preset: gitlab, clientId: c, clientSecret: s }
  okta: { type: oidc, preset: okta, issuer: https://example.okta.com, clientId: c, clientSecret: s, rpInitiatedLogout: true }
  github: { type: oidc, provider: github, clientId: c, clientSecret: s, allowedOrgs: [acme], allowedTeams: [acme/devs] }
${ROUTE('[web, google, github]')}`;
  t.same(await errorsOf(t, yaml), []);
});

t.test('refused at start', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['no issuer', '{ type: oidc, clientId: c, clientSecret: s }', /issuer: is required for provider 'oidc'/],
    ['entra without tenant', '{ type: oidc, preset: entra, clientId: c, clientSecret: s }', /tenant: is required for preset 'entra'/],
    ['entra multi-tenant without an allow-list', '{ type: oidc, preset: entra, tenant: common, clientId: c, clientSecret: s }', /allowedTenants: a multi-tenant app must list the tenants/],
    ['no secret', '{ type: oidc, issuer: https://op.example, clientId: c }', /clientSecret: is required/],
    ['private_key_jwt without a key', '{ type: oidc, issuer: https://op.example, clientId: c, clientAuth: private_key_jwt }', /privateKey: is required/],
    ['unknown preset', '{ type: oidc, preset: nope, issuer: https://op.example, clientId: c, clientSecret: s }', /preset/],
  ];
  for (const [what, def, re] of cases) {
    const errors = await errorsOf(t, `authenticators:\n  web: { type: session }\n  sso: ${def}\n${ROUTE('[web, sso]')}`);
    t.match(errors.join('\n'), re, what);
  }
  const alone = await errorsOf(t, `authenticators:\n  sso: { type: oidc, issuer: https://op.example, clientId: c, clientSecret: s }\n${ROUTE('[sso]')}`);
  t.match(alone.join('\n'), /needs a session authenticator in the same chain/, 'an oidc authenticator without a session one would loop');
});
