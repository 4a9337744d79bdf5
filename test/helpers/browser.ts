// Chromium for the browser tests: the system one when present (Debian's /usr/bin/chromium, or
// AUTHGATE_CHROMIUM), otherwise the one @sparticuz/chromium ships inside its npm package, so
// `npm ci && npm test` needs nothing installed by hand. Never its own launch args: they turn web
// security off, and a browser without it proves nothing about CSRF or CORS.
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function executablePath(): Promise<string> {
  const configured = process.env.AUTHGATE_CHROMIUM ?? '/usr/bin/chromium';
  if (existsSync(configured)) return configured;
  return bundledChromium();
}

const READY = '/tmp/authgate-chromium.ready';
const LOCK = '/tmp/authgate-chromium.lock';

/**
 * @sparticuz/chromium unpacks itself to /tmp/chromium and answers at once when that file exists,
 * even while another test process is still writing it (seen: spawn ETXTBSY when two browser
 * test files started together). One process unpacks under a lock; the others wait for it.
 */
async function bundledChromium(): Promise<string> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (existsSync(READY) && existsSync('/tmp/chromium')) return '/tmp/chromium';
    let owner = false;
    try {
      mkdirSync(LOCK);
      owner = true;
    } catch {
      // Another process unpacks; a lock older than two minutes belongs to one that died.
      try { if (Date.now() - statSync(LOCK).mtimeMs > 120_000) rmSync(LOCK, { recursive: true, force: true }); } catch { /* gone meanwhile */ }
    }
    if (owner) {
      try {
        const bundled = (await import('@sparticuz/chromium')).default;
        const path = await bundled.executablePath();
        writeFileSync(READY, path);
        return path;
      } finally {
        rmSync(LOCK, { recursive: true, force: true });
      }
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for another process to unpack Chromium');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A headless Chromium; the caller closes it (t.teardown(() => browser.close())). */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: await executablePath(), headless: true, args: ARGS });
}

/** Evaluates an expression in the page (a string: the project compiles without the DOM lib). */
export const inPage = <T>(page: Page, expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;

/**
 * The id of the focused element once it is `expected`, or whatever has focus after `timeoutMs`:
 * autofocus lands after the page has loaded, later than navigation returns on a loaded machine.
 */
export async function focusedId(page: Page, expected: string, timeoutMs = 5_000): Promise<string> {
  await page.waitForFunction(`document.activeElement?.id === ${JSON.stringify(expected)}`, undefined, { timeout: timeoutMs }).catch(() => undefined);
  return inPage<string>(page, 'document.activeElement?.id ?? ""');
}
