// Several providers at once (issue 10): two real OpenID Providers, one button each on the login
// page, each with its own callback; a route's chain accepts the session either created.
import t from 'tap';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { browse, CookieJar, signInAtProvider, startTestOp, type Teardown } from '../helpers/oidc.js';

async function twoProviders(t: Teardown) {
  const corp = await startTestOp(t);
  const partner = await startTestOp(t);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    authenticators: {
      web: { type: 'session' },
      corp: { type: 'oidc', issuer: corp.issuer, clientId: 'gw-corp', clientSecret: 'corp-secret', label: 'Corp SSO' },
      partner: { type: 'oidc', issuer: partner.issuer, clientId: 'gw-partner', clientSecret: 'partner-secret', label: 'Partner ID', clientAuth: 'client_secret_post' },
    },
    routes: [
      { name: 'both', match: { path: '/both/**' }, upstream: echo.url, auth: ['web', 'corp', 'partner'], onUnauthenticated: 'login' },
      { name: 'corp-only', match: { path: '/corp/**' }, upstream: echo.url, auth: ['web', 'corp'], onUnauthenticated: 'login' },
    ],
  });
  corp.configure([{ client_id: 'gw-corp', client_secret: 'corp-secret', redirect_uris: [`${gw.url}/.auth/oidc/corp/callback`] }]);
  partner.configure([{ client_id: 'gw-partner', client_secret: 'partner-secret', token_endpoint_auth_method: 'client_secret_post', redirect_uris: [`${gw.url}/.auth/oidc/partner/callback`] }]);
  return { corp, partner, gw };
}

t.test('two providers: the login page offers both; one-provider routes go straight to it', async (t) => {
  const { gw } = await twoProviders(t);
  const jar = new CookieJar();
  const both = await browse(jar, `${gw.url}/both/x`);
  t.equal(both.status, 302);
  t.match(both.location ?? '', /\/\.auth\/login\?rd=/, 'several providers: the login page');
  const page = await browse(jar, both.location as string);
  t.match(page.body, /href="\/\.auth\/oidc\/corp\/login\?rd=%2Fboth%2Fx">Continue with Corp SSO/);
  t.match(page.body, /href="\/\.auth\/oidc\/partner\/login\?rd=%2Fboth%2Fx">Continue with Partner ID/);
  const one = await browse(jar, `${gw.url}/corp/x`);
  t.match(one.location ?? '', /\/\.auth\/oidc\/corp\/login\?rd=%2Fcorp%2Fx$/, 'exactly one provider: straight to it');
});

t.test('a session from either provider is accepted by the chain, with its own method', async (t) => {
  const { gw } = await twoProviders(t);
  for (const name of ['corp', 'partner']) {
    const jar = new CookieJar();
    const res = await signInAtProvider(jar, `${gw.url}/.auth/oidc/${name}/login?rd=/both/x`, `user-${name}`, () => false);
    t.equal(res.last.status, 200, name);
    const headers = (JSON.parse(res.last.body) as { headers: Record<string, string> }).headers;
    t.equal(headers['x-auth-method'], `oidc:${name}`);
    t.equal(headers['x-auth-user'], `user-${name}`);
  }
});

t.test("a flow started for one provider cannot finish at the other's callback", async (t) => {
  const { gw } = await twoProviders(t);
  const jar = new CookieJar();
  const res = await signInAtProvider(jar, `${gw.url}/.auth/oidc/partner/login?rd=/both/x`, 'alice', (u) => u.includes('/.auth/oidc/partner/callback'));
  const swapped = (res.stoppedAt as string).replace('/oidc/partner/', '/oidc/corp/');
  const hop = await browse(jar, swapped);
  t.equal(hop.status, 400);
  t.notOk(jar.get('authgate_session'), 'no session');
});

t.test('several tabs sign in at once: each flow has its own state', async (t) => {
  const { gw } = await twoProviders(t);
  const jar = new CookieJar();
  const tab1 = await signInAtProvider(jar, `${gw.url}/.auth/oidc/corp/login?rd=/both/one`, 'alice', (u) => u.includes('/callback'));
  const tab2 = await signInAtProvider(jar, `${gw.url}/.auth/oidc/corp/login?rd=/both/two`, 'alice', (u) => u.includes('/callback'));
  const done2 = await browse(jar, tab2.stoppedAt as string);
  t.equal(done2.location, `${gw.url}/both/two`);
  const done1 = await browse(jar, tab1.stoppedAt as string);
  t.equal(done1.status, 302, 'the first tab finishes too');
  t.equal(done1.location, `${gw.url}/both/one`);
});
