// Who may sign in through a provider and what the session says (issue 10): verified-only domain
// rules, Google's hd, groups, Keycloak roles, Entra tenants and group overage, linking to a local
// user by verified email, trusted provider MFA, the identity header budget, step-up.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { waitFor } from '../helpers/gateway.js';
import { browse } from '../helpers/oidc.js';
import { passwordHashes, usersFile } from '../sessions/_browser.js';
import { oidcRig, oidcSignIn, type OidcRig } from './_setup.js';

type Headers = Record<string, string>;

async function signIn(rig: OidcRig, login: string) {
  const { jar, last } = await oidcSignIn(rig, login);
  const headers = last.status === 200 && last.url.endsWith('/app/x') ? (JSON.parse(last.body) as { headers: Headers }).headers : undefined;
  return { jar, last, headers };
}

async function refused(t: Test, rig: OidcRig, login: string, status: number, text: RegExp): Promise<void> {
  const { jar, last } = await signIn(rig, login);
  t.equal(last.status, status, `${login}: ${status}`);
  t.match(last.body, text);
  t.notOk(jar.get('authgate_session'), 'no session');
  t.equal((await browse(jar, `${rig.gw.url}/app/x`)).status, 302, 'still asked to sign in');
}

t.test('allowedDomains applies to verified addresses only', async (t) => {
  const rig = await oidcRig(t, { auth: { allowedDomains: ['example.com'] } });
  rig.op.accounts.set('ok', { email: 'ok@example.com', email_verified: true });
  rig.op.accounts.set('unverified', { email: 'unverified@example.com', email_verified: false });
  rig.op.accounts.set('other', { email: 'other@evil.test', email_verified: true });
  t.equal((await signIn(rig, 'ok')).headers?.['x-auth-email'], 'ok@example.com');
  await refused(t, rig, 'unverified', 403, /your email address is not verified/);
  await refused(t, rig, 'other', 403, /domain may not sign in/);
});

t.test('google preset: hd decides allowedDomains, not the email suffix; user = email', async (t) => {
  const rig = await oidcRig(t, { auth: { preset: 'google', allowedDomains: ['example.com'] } });
  rig.op.accounts.set('workspace', { email: 'w@example.com', email_verified: true, hd: 'example.com' });
  rig.op.accounts.set('gmail', { email: 'g@example.com', email_verified: true });
  const ok = await signIn(rig, 'workspace');
  t.equal(ok.headers?.['x-auth-user'], 'w@example.com');
  await refused(t, rig, 'gmail', 403, /domain may not sign in/);
});

t.test('allowedGroups', async (t) => {
  const rig = await oidcRig(t, { auth: { allowedGroups: ['staff'] } });
  rig.op.accounts.set('in', { groups: ['staff'] });
  rig.op.accounts.set('out', { groups: ['guests'] });
  t.equal((await signIn(rig, 'in')).headers?.['x-auth-groups'], 'staff');
  await refused(t, rig, 'out', 403, /not in a group/);
});

t.test('keycloak preset: realm roles become groups through the dotted-path mapping', async (t) => {
  const rig = await oidcRig(t, { auth: { preset: 'keycloak' } });
  rig.op.accounts.set('kc', { preferred_username: 'kc-user', realm_access: { roles: ['admin', 'offline_access'] } });
  const { headers } = await signIn(rig, 'kc');
  t.equal(headers?.['x-auth-user'], 'kc-user');
  t.equal(headers?.['x-auth-groups'], 'admin,offline_access');
});

t.test('entra preset: tid allow-list, and a group overage refuses instead of reading "no groups"', async (t) => {
  const rig = await oidcRig(t, { auth: { preset: 'entra', tenant: 'contoso', allowedTenants: ['t-good'] } });
  rig.op.accounts.set('good', { tid: 't-good', preferred_username: 'good@contoso.test', groups: ['g1'] });
  rig.op.accounts.set('foreign', { tid: 't-evil', preferred_username: 'x@evil.test' });
  t.equal((await signIn(rig, 'good')).headers?.['x-auth-user'], 'good@contoso.test');
  await refused(t, rig, 'foreign', 403, /organization is not allowed/);
  rig.op.tamperToken = async (json) => ({ ...json, id_token: await rig.op.sign({ ...decodeJwt(json.id_token as string), hasgroups: true }) });
  await refused(t, rig, 'good', 403, /too many groups for the identity provider/);
});

t.test('linkUsers: email links a verified address to the local user; unverified or unset never does', async (t) => {
  const users = await usersFile(); // alice: alice@example.test, groups admin, staff
  const rig = await oidcRig(t, { auth: { linkUsers: 'email' }, users });
  rig.op.accounts.set('ext-1', { email: 'alice@example.test', email_verified: true, preferred_username: 'ext-1' });
  rig.op.accounts.set('ext-2', { email: 'alice@example.test', email_verified: false, preferred_username: 'ext-2' });
  const linked = await signIn(rig, 'ext-1');
  t.equal(linked.headers?.['x-auth-user'], 'alice', 'verified: signed in as the local user');
  t.match(linked.headers?.['x-auth-groups'] ?? '', /admin/);
  const unlinked = await signIn(rig, 'ext-2');
  t.equal(unlinked.headers?.['x-auth-user'], 'ext-2', 'unverified: never the local user (account takeover)');
  t.notOk(unlinked.headers?.['x-auth-email'], 'and the unverified address is not passed on');

  // The linked session follows the local account: disabling alice ends it.
  const h = await passwordHashes();
  writeFileSync(join(rig.gw.dir, 'users.yaml'), await usersFile({ alice: { email: 'alice@example.test', password: h.alice, groups: ['admin'], disabled: true } }));
  t.ok(await waitFor(async () => (await browse(linked.jar, `${rig.gw.url}/app/x`)).status === 302, 5000), 'disabled local user: the linked session ended');
  t.equal((await browse(unlinked.jar, `${rig.gw.url}/app/x`)).status, 200, 'the unlinked identity is not affected');

  const off = await oidcRig(t, { users });
  off.op.accounts.set('ext-1', { email: 'alice@example.test', email_verified: true, preferred_username: 'ext-1' });
  t.equal((await signIn(off, 'ext-1')).headers?.['x-auth-user'], 'ext-1', 'linking is off by default');
});

t.test('provider MFA counts for require.mfa only with trustProviderMfa', async (t) => {
  const withAmr = (rig: OidcRig) => {
    rig.op.tamperToken = async (json) => ({ ...json, id_token: await rig.op.sign({ ...decodeJwt(json.id_token as string), amr: ['pwd', 'otp'], acr: 'urn:mfa' }) });
  };
  const trusted = await oidcRig(t, { auth: { trustProviderMfa: true }, route: { require: { mfa: true } } });
  withAmr(trusted);
  const ok = await signIn(trusted, 'alice');
  t.equal(ok.headers?.['x-auth-mfa'], 'true');
  const untrusted = await oidcRig(t, { route: { require: { mfa: true } } });
  withAmr(untrusted);
  const { jar, last } = await oidcSignIn(untrusted, 'alice');
  t.not(last.status, 200, 'not let through');
  const me = await browse(jar, `${untrusted.gw.url}/.auth/me`, { headers: { accept: 'application/json' } });
  t.equal(JSON.parse(me.body).mfa, false, 'the session exists but has no MFA');
});

t.test('identity header budget: too many groups is a clear refusal, never a silent cut', async (t) => {
  const rig = await oidcRig(t);
  rig.op.accounts.set('big', { groups: Array.from({ length: 400 }, (_, i) => `group-with-a-long-name-${i}`) });
  await refused(t, rig, 'big', 403, /too many groups to pass on \(400\)/);
});

t.test('step-up: a signed-in browser sent to the provider again gets prompt=login', async (t) => {
  const rig = await oidcRig(t);
  const { jar } = await signIn(rig, 'alice');
  const again = await browse(jar, `${rig.gw.url}/.auth/oidc/corp/login?rd=/app/x`);
  const to = new URL(again.location ?? '');
  t.equal(to.searchParams.get('prompt'), 'login');
  t.equal(to.searchParams.get('max_age'), '0');
  const fresh = await browse(new (jar.constructor as new () => typeof jar)(), `${rig.gw.url}/.auth/oidc/corp/login?rd=/app/x`);
  t.equal(new URL(fresh.location ?? '').searchParams.get('prompt'), null, 'a first sign-in is not forced');
});

t.test('claim trust: a multi-@ address, a look-alike domain, an unverified address as user name', async (t) => {
  const rig = await oidcRig(t, { auth: { allowedDomains: ['corp.test'] } });
  rig.op.accounts.set('multi', { email: 'attacker@evil.test@corp.test', email_verified: true });
  rig.op.accounts.set('lookalike', { email: 'x@corp.tеst', email_verified: true }); // Cyrillic е
  await refused(t, rig, 'multi', 403, /domain may not sign in/);
  await refused(t, rig, 'lookalike', 403, /domain may not sign in/);

  const open = await oidcRig(t);
  // No preferred_username: the user would be named by the address — only a verified one.
  open.op.accounts.set('sub-123', { email: 'alice@corp.test', email_verified: false });
  t.equal((await signIn(open, 'sub-123')).headers?.['x-auth-user'], 'sub-123', 'an unverified address never becomes the user name');
  open.op.accounts.set('sub-456', { email: 'bob@corp.test', email_verified: true });
  t.equal((await signIn(open, 'sub-456')).headers?.['x-auth-user'], 'bob@corp.test');
});
