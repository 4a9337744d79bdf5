// The login page in a real browser (Chromium driven by playwright-core: the system one, else the npm-shipped one): sign in through
// the page, reach a protected upstream route and come back to it, sign out. Screenshots of the
// page at desktop and phone widths go to test-artifacts/ for a person to look at.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, focusedId, inPage, launchBrowser } from '../helpers/browser.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { PASSWORDS, usersFile } from '../sessions/_browser.js';

t.test('sign in through the page, reach the protected route, sign out', async (t) => {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    secrets: { session: randomBytes(32).toString('base64url') },
    login: { branding: { name: 'Acme Intranet' } },
    authenticators: { web: { type: 'session' } },
    routes: [{ name: 'admin', match: { path: '/admin/**' }, upstream: echo.url, auth: ['web'], require: { groups: ['admin'] }, onUnauthenticated: 'login' }],
  }, { files: { 'users.yaml': await usersFile() } });

  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();

  // A protected page sends the browser to the login page, remembering where it was going.
  await page.goto(`${gw.url}/admin/dashboard?tab=2`);
  t.equal(new URL(page.url()).pathname, '/.auth/login');
  t.equal(new URL(page.url()).searchParams.get('rd'), '/admin/dashboard?tab=2');
  t.equal(await page.title(), 'Sign in · Acme Intranet');
  t.equal(await focusedId(page, 'username'), 'username', 'focus starts in the login field');
  await page.screenshot({ path: join(ARTIFACTS, 'login-desktop.png') });

  // A wrong password: the page comes back with an announced error tied to both fields.
  await page.getByLabel('Username or email').fill('alice');
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('[role="alert"]');
  t.match(await page.textContent('[role="alert"]'), /Incorrect username or password/);
  t.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
  t.equal(await page.getAttribute('#password', 'aria-describedby'), 'login-error');
  t.equal(await page.inputValue('#username'), 'alice', 'the login name is kept');
  t.equal(await focusedId(page, 'password'), 'password', 'focus moves to the password');
  await page.screenshot({ path: join(ARTIFACTS, 'login-error-desktop.png') });

  // The right password: back to the original URL, with the identity the upstream receives.
  await page.getByLabel('Password').fill(PASSWORDS.alice);
  await Promise.all([page.waitForURL(`${gw.url}/admin/dashboard?tab=2`), page.getByRole('button', { name: 'Sign in' }).click()]);
  const seen = JSON.parse((await page.textContent('body')) ?? '{}') as { url: string; headers: Record<string, string> };
  t.equal(seen.url, '/admin/dashboard?tab=2');
  t.equal(seen.headers['x-auth-user'], 'alice');
  t.equal(seen.headers['x-auth-method'], 'session');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'authgate_session');
  t.ok(session, 'session cookie set');
  t.equal(session?.httpOnly, true);
  t.equal(session?.sameSite, 'Lax');
  t.equal(session?.path, '/');
  t.equal(await inPage<string>(page, 'document.cookie'), '', 'invisible to scripts');

  // Sign out from the login page: the session ends and the protected page asks again.
  await page.goto(`${gw.url}/.auth/login`);
  t.match(await page.textContent('[role="status"]'), /signed in as alice/);
  await page.screenshot({ path: join(ARTIFACTS, 'login-signed-in-desktop.png') });
  await Promise.all([page.waitForURL(`${gw.url}/.auth/login`), page.getByRole('button', { name: 'Sign out' }).click()]);
  t.equal(await page.locator('[role="status"]').count(), 0, 'no longer signed in');
  t.notOk((await context.cookies()).some((c) => c.name === 'authgate_session'), 'cookie cleared');
  await page.goto(`${gw.url}/admin/dashboard`);
  t.equal(new URL(page.url()).pathname, '/.auth/login', 'the protected page asks to sign in again');
  t.equal(await context.request.get(`${gw.url}/.auth/me`, { failOnStatusCode: false }).then((r) => r.status()), 401);
  t.equal(session !== undefined && (await context.request.get(`${gw.url}/.auth/me`, { headers: { cookie: `authgate_session=${session.value}` }, failOnStatusCode: false }).then((r) => r.status())), 401, 'the old cookie is dead on the server');
  await context.close();
});

t.test('phone width: nothing overflows, the form is usable', async (t) => {
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    secrets: { session: randomBytes(32).toString('base64url') },
    authenticators: { web: { type: 'session' } },
    routes: [],
  }, { files: { 'users.yaml': await usersFile() } });
  const browser = await launchBrowser();
  t.teardown(() => browser.close());
  const dark = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  await dark.goto(`${gw.url}/.auth/login`);
  await dark.screenshot({ path: join(ARTIFACTS, 'login-dark-desktop.png') });
  await dark.close();
  for (const [name, viewport] of [['phone', { width: 390, height: 844 }], ['narrow', { width: 360, height: 740 }]] as const) {
    const context = await browser.newContext({ viewport, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    await page.goto(`${gw.url}/.auth/login`);
    const overflow = await inPage<number>(page, 'document.documentElement.scrollWidth - document.documentElement.clientWidth');
    t.equal(overflow, 0, `${name}: no horizontal scrolling`);
    const button = await page.getByRole('button', { name: 'Sign in' }).boundingBox();
    t.ok(button !== null && button.height >= 44 && button.x >= 0 && button.x + button.width <= viewport.width, `${name}: a full, tappable button`);
    if (name === 'phone') await page.screenshot({ path: join(ARTIFACTS, 'login-phone.png') });
    await page.getByLabel('Username or email').fill('alice');
    await page.getByLabel('Password').fill(PASSWORDS.alice);
    await Promise.all([page.waitForURL(`${gw.url}/`), page.getByRole('button', { name: 'Sign in' }).click()]);
    t.ok((await context.cookies()).some((c) => c.name === 'authgate_session'), `${name}: signed in`);
    await context.close();
  }
});
