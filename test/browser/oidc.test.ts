// OIDC sign-in in a real browser: the login page with two providers, a click on one, the
// provider's own sign-in pages, and back to the protected URL; an error page. Screenshots go to
// test-artifacts/ (oidc-login-two-providers.png, oidc-error.png).
import { join } from 'node:path';
import t from 'tap';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, launchBrowser } from '../helpers/browser.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { startTestOp } from '../helpers/oidc.js';

t.test('click the provider button, sign in at the provider, land on the protected URL', async (t) => {
  const corp = await startTestOp(t);
  const partner = await startTestOp(t);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    login: { branding: { name: 'Acme Intranet' } },
    authenticators: {
      web: { type: 'session' },
      corp: { type: 'oidc', issuer: corp.issuer, clientId: 'gw', clientSecret: 'corp-secret', label: 'Acme SSO' },
      partner: { type: 'oidc', issuer: partner.issuer, clientId: 'gw', clientSecret: 'partner-secret', label: 'Partner ID' },
    },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'corp', 'partner'], onUnauthenticated: 'login' }],
  });
  corp.configure([{ client_id: 'gw', client_secret: 'corp-secret', redirect_uris: [`${gw.url}/.auth/oidc/corp/callback`] }]);
  partner.configure([{ client_id: 'gw', client_secret: 'partner-secret', redirect_uris: [`${gw.url}/.auth/oidc/partner/callback`] }]);
  corp.accounts.set('alice', { email: 'alice@acme.test', email_verified: true, preferred_username: 'alice' });

  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();

  await page.goto(`${gw.url}/app/reports?q=1`);
  t.equal(new URL(page.url()).pathname, '/.auth/login', 'two providers: the login page');
  t.ok(await page.getByRole('link', { name: 'Continue with Acme SSO' }).isVisible());
  t.ok(await page.getByRole('link', { name: 'Continue with Partner ID' }).isVisible());
  await page.screenshot({ path: join(ARTIFACTS, 'oidc-login-two-providers.png') });

  await page.getByRole('link', { name: 'Continue with Acme SSO' }).click();
  await page.waitForURL((u) => u.origin === corp.issuer);
  await page.fill('input[name="login"]', 'alice');
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  // The provider's consent page, then back to the gateway and on to the protected URL.
  await page.waitForURL((u) => u.origin === corp.issuer && u.pathname.startsWith('/interaction/'));
  await Promise.all([page.waitForURL(`${gw.url}/app/reports?q=1`), page.click('button[type="submit"]')]);
  const seen = JSON.parse((await page.textContent('body')) ?? '{}') as { url: string; headers: Record<string, string> };
  t.equal(seen.url, '/app/reports?q=1');
  t.equal(seen.headers['x-auth-user'], 'alice');
  t.equal(seen.headers['x-auth-method'], 'oidc:corp');
  const cookies = await context.cookies();
  t.equal(cookies.find((c) => c.name === 'authgate_oidc_flow')?.sameSite, 'Lax', 'flow cookie SameSite=Lax');
  t.equal(cookies.find((c) => c.name === 'authgate_session')?.httpOnly, true);

  // A callback nobody started: a clear error page, no session in a fresh browser.
  const fresh = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const errorPage = await fresh.newPage();
  const res = await errorPage.goto(`${gw.url}/.auth/oidc/corp/callback?code=abc&state=forged-state-value-123456`);
  t.equal(res?.status(), 400);
  t.match(await errorPage.textContent('[role="alert"]'), /Sign-in expired, try again/);
  t.ok(await errorPage.getByRole('link', { name: 'Continue with Acme SSO' }).isVisible(), 'the way to try again is right there');
  await errorPage.screenshot({ path: join(ARTIFACTS, 'oidc-error.png') });
  t.notOk((await fresh.cookies(gw.url)).some((c) => c.name === 'authgate_session'));
});
