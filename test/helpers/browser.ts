// Chromium for the browser tests: the system one when present (Debian's /usr/bin/chromium, or
// AUTHGATE_CHROMIUM), otherwise the one @sparticuz/chromium ships inside its npm package, so
// `npm ci && npm test` needs nothing installed by hand. Never its own launch args: they turn web
// security off, and a browser without it proves nothing about CSRF or CORS.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function executablePath(): Promise<string> {
  const configured = process.env.AUTHGATE_CHROMIUM ?? '/usr/bin/chromium';
  if (existsSync(configured)) return configured;
  const bundled = (await import('@sparticuz/chromium')).default;
  return bundled.executablePath();
}

/** A headless Chromium; the caller closes it (t.teardown(() => browser.close())). */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: await executablePath(), headless: true, args: ARGS });
}

/** Evaluates an expression in the page (a string: the project compiles without the DOM lib). */
export const inPage = <T>(page: Page, expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;
