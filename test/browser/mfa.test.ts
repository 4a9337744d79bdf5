// MFA in a real browser (Chromium via playwright-core; issue 11): enrol TOTP from the page, sign
// out, sign in with password + code; register a passkey with Chromium's virtual authenticator
// (CDP WebAuthn.addVirtualAuthenticator) and sign in with it, no password. Screenshots of every
// MFA page at desktop and phone width go to test-artifacts/.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, focusedId, inPage, launchBrowser } from '../helpers/browser.js';
import { awayFromStepEdge, freePort, PW, startMfaGateway, totp } from '../mfa/_mfa.js';

const PHONE = { width: 360, height: 740 };
const DESKTOP = { width: 1280, height: 800 };

/** Screenshots at both widths (and dark), and the page must not scroll sideways on the phone. */
async function shoot(t: Test, page: Page, name: string): Promise<void> {
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-dark.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
  t.ok(await inPage<boolean>(page, 'document.documentElement.scrollWidth <= window.innerWidth'), `${name}: no horizontal scroll at 360 px`);
  await page.setViewportSize(DESKTOP);
}

async function gateway(t: Test) {
  const port = await freePort();
  const base = `http://localhost:${port}`;
  const started = await startMfaGateway(t, { server: { listen: { host: '127.0.0.1', port }, publicUrl: base }, mfa: { passkeyLogin: true, webauthn: { rpName: 'authgate test' } } });
  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());
  return { ...started, base, browser };
}

async function signInWithPassword(page: Page, base: string, user: string, rd: string): Promise<void> {
  await page.goto(`${base}/.auth/login?rd=${encodeURIComponent(rd)}`);
  await page.getByLabel('Username or email').fill(user);
  await page.getByLabel('Password').fill(PW[user]!);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

t.test('enrol TOTP from the page, sign out, sign in with password + code', async (t) => {
  const { gw, base, browser, echo } = await gateway(t);
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();

  await signInWithPassword(page, base, 'bob', '/.auth/mfa/totp?rd=%2Fapp%2Fhome');
  await page.waitForURL(/\/\.auth\/mfa\/totp/);
  t.equal(await page.title(), 'Set up an authenticator app · authgate');
  t.ok(await page.locator('.qr svg').count(), 'the QR code is inline SVG');
  t.ok(await page.getByRole('img', { name: 'QR code of your authenticator key' }).count());
  const secret = ((await page.textContent('.secret')) ?? '').replace(/\s+/g, '');
  t.match(secret, /^[A-Z2-7]{32}$/, 'the secret as text');
  await shoot(t, page, 'mfa-enrol');

  await page.getByLabel('Authentication code').fill('000000');
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForSelector('[role="alert"]');
  t.match(await page.textContent('[role="alert"]'), /not valid/);
  t.equal(await page.getAttribute('#code', 'aria-invalid'), 'true');

  await awayFromStepEdge();
  await page.getByLabel('Authentication code').fill(await totp(secret));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForSelector('#recovery-codes');
  const codes = ((await page.textContent('#recovery-codes')) ?? '').trim().split('\n');
  t.equal(codes.length, 10, 'ten recovery codes shown once');
  t.match(await page.getAttribute('a[download]', 'href'), /^data:text\/plain/);
  t.ok(await page.getByRole('button', { name: 'Copy' }).count());
  await shoot(t, page, 'mfa-recovery-codes');
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await page.getByRole('button', { name: 'Copy' }).click();
  t.same(consoleErrors.filter((m) => /Content Security Policy/.test(m)), [], 'the script runs under the CSP');

  await Promise.all([page.waitForURL(`${base}/app/home`), page.getByRole('link', { name: 'Continue' }).click()]);

  // Sign out, then the second step at the next sign-in.
  await page.goto(`${base}/.auth/login`);
  await Promise.all([page.waitForURL(`${base}/.auth/login`), page.getByRole('button', { name: 'Sign out' }).click()]);
  await signInWithPassword(page, base, 'bob', '/admin/report');
  await page.waitForURL(/\/\.auth\/mfa\?rd=/);
  t.equal(await page.title(), 'Two-step verification · authgate');
  t.equal(await page.getAttribute('#code', 'autocomplete'), 'one-time-code');
  t.equal(await focusedId(page, 'code'), 'code', 'focus in the code field');
  await shoot(t, page, 'mfa-second-step');
  await page.getByLabel('Authentication code').fill(await totp(secret, Math.floor(Date.now() / 1000) + 30));
  await Promise.all([page.waitForURL(`${base}/admin/report`), page.getByRole('button', { name: 'Verify' }).click()]);
  const seen = JSON.parse((await page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
  t.equal(seen.headers['x-auth-user'], 'bob');
  t.equal(seen.headers['x-auth-mfa'], 'true');
  t.ok(echo.received.length > 0);
  t.notOk(gw.rawLogs.some((l) => l.includes(secret) || codes.some((c) => l.includes(c))), 'no secret or recovery code in the logs');
  await context.close();
});

t.test('register a passkey (virtual authenticator) and sign in with it, no password', async (t) => {
  const { base, browser } = await gateway(t);
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true } });

  await signInWithPassword(page, base, 'carol', '/.auth/mfa/passkeys');
  await page.waitForURL(`${base}/.auth/mfa/passkeys`);
  await shoot(t, page, 'mfa-passkeys-empty');
  await page.getByLabel('Name of the new passkey').fill('Laptop');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  // A locator, not waitForFunction: a string predicate is eval, which the page's CSP refuses.
  await page.locator('.list li, #passkey-status:not(:empty)').first().waitFor();
  t.equal(await page.textContent('#passkey-status'), '', 'no error from the ceremony');
  t.match(await page.textContent('.list'), /Laptop/);
  await shoot(t, page, 'mfa-passkeys');

  await context.clearCookies();
  await page.goto(`${base}/.auth/login?rd=%2Fapp%2Fhome`);
  await shoot(t, page, 'mfa-login-with-passkey-link');
  await page.getByRole('link', { name: 'Sign in with a passkey' }).click();
  await page.waitForURL(/\/\.auth\/mfa/);
  await shoot(t, page, 'mfa-passkey-login');
  await Promise.all([page.waitForURL(`${base}/app/home`), page.getByRole('button', { name: 'Sign in with a passkey' }).click()]);
  const seen = JSON.parse((await page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
  t.equal(seen.headers['x-auth-user'], 'carol');
  t.equal(seen.headers['x-auth-mfa'], 'true', 'a user-verified passkey counts as two factors');
  await context.close();
});
