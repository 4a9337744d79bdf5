// The account page in a real browser (Chromium via playwright-core): sign in, end the session of
// another device, create an API token (copied with the button the script reveals) and revoke it,
// all by clicking, under the page's strict CSP. Screenshots at desktop, phone and dark go to
// test-artifacts/ for a person to look at.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, inPage, launchBrowser } from '../helpers/browser.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { call, cookieValue, jsonLogin, PASSWORDS, usersFile } from '../sessions/_browser.js';

const OTHER_DEVICE = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';

async function setup(t: Parameters<typeof startTestGateway>[0]) {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    secrets: { session: randomBytes(32).toString('base64url') },
    login: { branding: { name: 'Acme Intranet' } },
    authenticators: { web: { type: 'session' }, 'api-token': { type: 'token' } },
    tokens: { grantableScopes: { staff: ['orders:read'] } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'api-token'] }],
  }, { files: { 'users.yaml': await usersFile() } });
  return { gw, echo };
}

/** Signs in through the login page the account page sends an anonymous browser to. */
async function signInThroughPage(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/.auth/account`);
  await page.getByLabel('Username or email').fill('alice');
  await page.getByLabel('Password').fill(PASSWORDS.alice);
  await Promise.all([page.waitForURL(`${base}/.auth/account`), page.getByRole('button', { name: 'Sign in' }).click()]);
}

t.test('sign in, end another session, create and revoke a token', async (t) => {
  const { gw } = await setup(t);
  const other = cookieValue(await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { 'user-agent': OTHER_DEVICE })) as string;
  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.url });
  const page = await context.newPage();
  const cspErrors: string[] = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); });

  await signInThroughPage(page, gw.url);
  t.equal(await page.title(), 'Your account · Acme Intranet');
  t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Your account');
  const sessions = page.getByRole('region', { name: 'Where you\'re signed in' });
  t.equal(await sessions.getByRole('listitem').count(), 2, 'this browser and the other device');
  t.match(await sessions.textContent(), /Firefox on Windows/);
  t.match(await sessions.textContent(), /This session/);

  // End the other device's session: its cookie is dead at once.
  await Promise.all([page.waitForURL(/done=session-ended/), sessions.getByRole('button', { name: 'End session on Firefox on Windows' }).click()]);
  t.match(await page.getByRole('status').textContent(), /The session was ended/);
  t.equal(await sessions.getByRole('listitem').count(), 1);
  t.equal((await call(`${gw.url}/.auth/me`, { headers: { cookie: `authgate_session=${other}` } })).status, 401, 'the other device is signed out');

  // Create a token: the secret is shown once, the script reveals a working Copy button.
  const tokens = page.getByRole('region', { name: 'API tokens' });
  await tokens.getByLabel('Name').fill('deploys');
  await tokens.getByLabel('Expires after').selectOption('30d');
  await tokens.getByLabel(/Scopes/).fill('orders:read');
  await Promise.all([page.waitForURL(`${gw.url}/.auth/account/tokens`), tokens.getByRole('button', { name: 'Create token' }).click()]);
  const secret = await page.getByLabel('New API token').inputValue();
  t.match(secret, /^agt_[0-9A-Za-z]{49}$/);
  const copy = tokens.getByRole('button', { name: 'Copy' });
  t.ok(await copy.isVisible(), 'the copy button is revealed by the page\'s script');
  await copy.click();
  await page.waitForFunction("document.querySelector('[data-copy]').textContent === 'Copied'", undefined, { timeout: 5000 });
  t.equal(await inPage<string>(page, 'navigator.clipboard.readText()'), secret, 'copied to the clipboard');
  await page.screenshot({ path: join(ARTIFACTS, 'account-desktop.png'), fullPage: true });
  const used = await call(`${gw.url}/app/x`, { headers: { authorization: `Token ${secret}` } });
  t.equal(used.status, 200, 'the token works');
  t.equal(JSON.parse(used.body).headers['x-auth-user'], 'alice');

  // Reload: never shown again. Revoke it: it stops working.
  await page.goto(`${gw.url}/.auth/account`);
  t.notOk((await page.content()).includes(secret), 'the secret is not on the page any more');
  await Promise.all([page.waitForURL(/done=token-revoked/), tokens.getByRole('button', { name: 'Revoke token deploys' }).click()]);
  t.match(await page.getByRole('status').textContent(), /The token was revoked/);
  t.match(await tokens.textContent(), /You have no API tokens/);
  t.equal((await call(`${gw.url}/app/x`, { headers: { authorization: `Token ${secret}` } })).status, 401, 'the token is dead');
  t.same(cspErrors, [], 'nothing on the page was blocked by its CSP');
  await context.close();
});

t.test('phone, narrow and dark: nothing overflows, the actions stay tappable', async (t) => {
  const { gw } = await setup(t);
  await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { 'user-agent': OTHER_DEVICE });
  const browser = await launchBrowser();
  t.teardown(() => browser.close());
  for (const [name, viewport, colorScheme] of [['phone', { width: 390, height: 844 }, 'light'], ['narrow', { width: 360, height: 740 }, 'light'], ['dark', { width: 1280, height: 900 }, 'dark']] as const) {
    const context = await browser.newContext({ viewport, colorScheme, ...(name === 'dark' ? {} : { deviceScaleFactor: 2, isMobile: true, hasTouch: true }) });
    const page = await context.newPage();
    await signInThroughPage(page, gw.url);
    const tokens = page.getByRole('region', { name: 'API tokens' });
    await tokens.getByLabel('Name').fill('laptop');
    await Promise.all([page.waitForURL(`${gw.url}/.auth/account/tokens`), tokens.getByRole('button', { name: 'Create token' }).click()]);
    const overflow = await inPage<number>(page, 'document.documentElement.scrollWidth - document.documentElement.clientWidth');
    t.equal(overflow, 0, `${name}: no horizontal scrolling`);
    for (const label of ['Create token', 'End all other sessions']) {
      const box = await page.getByRole('button', { name: label }).boundingBox();
      t.ok(box !== null && box.height >= 40 && box.x >= 0 && box.x + box.width <= viewport.width, `${name}: "${label}" is whole and tappable`);
    }
    if (name === 'dark') {
      const bg = await inPage<string>(page, 'getComputedStyle(document.body).backgroundColor');
      t.equal(bg, 'rgb(14, 17, 23)', 'dark background');
    }
    if (name !== 'narrow') await page.screenshot({ path: join(ARTIFACTS, `account-${name}.png`), fullPage: true });
    await context.close();
  }
});
