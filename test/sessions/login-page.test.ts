// The login page renderer: escaping, provider buttons, branding, accessibility hooks, CSP hash.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Config } from '../../src/config/schema.js';
import { LoginPage, escapeHtml } from '../../src/endpoints/login-page.js';

const ctxOf = (config: Partial<Config>, configDir = process.cwd()) => ({ config: { routes: [], ...config } as Config, configDir, prefix: '/.auth', publicUrl: new URL('https://gw.test') });

t.test('escapeHtml', async (t) => {
  t.equal(escapeHtml(`<a href="x" onclick='y'>&\``), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&#96;');
});

t.test('provider buttons, escaped labels and rd', async (t) => {
  const page = new LoginPage(ctxOf({
    authenticators: {
      web: { type: 'session' },
      google: { type: 'oidc', provider: 'oidc', issuer: 'https://accounts.example', clientId: 'c', clientSecret: 's', label: 'Google <Workspace>' },
      'gh.corp': { type: 'oidc', provider: 'github', clientId: 'c', clientSecret: 's' },
    },
    login: { allowedRedirects: ['https://*.gw.test'] },
  }));
  const html = page.render({ rd: '/admin/x?a=1&b="<', username: '"><img src=x onerror=alert(1)>' });
  t.ok(html.includes('Continue with Google &lt;Workspace&gt;'));
  t.ok(html.includes('href="/.auth/oidc/google/login?rd=%2Fadmin%2Fx%3Fa%3D1%26b%3D%22%3C"'));
  t.ok(html.includes('href="/.auth/oidc/gh.corp/login?rd='), 'label defaults to the name');
  t.ok(html.includes('Continue with gh.corp'));
  t.ok(html.includes('value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"'));
  t.notOk(html.includes('<img src=x'));
  t.notOk(/<script/i.test(html));
  const csp = page.headers['content-security-policy']!;
  t.match(csp, "form-action 'self' https://*.gw.test;", 'a redirect to an allowed origin after the post is not blocked');
  const css = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
  t.ok(csp.includes(`'sha256-${createHash('sha256').update(css).digest('base64')}'`), 'CSP hash matches the inline stylesheet');
  t.notMatch(html, / style="/, 'no inline style attributes (CSP would block them)');
  t.notOk(page.render({ rd: '/' }).includes('?rd='), 'no rd parameter for the default target');
});

t.test('errors are tied to the fields; branding', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-logo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>');
  const page = new LoginPage(ctxOf({ login: { identifiers: ['email'], branding: { name: 'Acme <Intranet>', logo: './logo.svg', color: '#ffcc00' } } }, dir));
  const html = page.render({ rd: '/', username: 'a@b.test', error: 'invalid_credentials' });
  t.match(html, /<div class="alert" role="alert" id="login-error">/);
  t.equal(html.match(/aria-invalid="true" aria-describedby="login-error"/g)?.length, 2, 'both fields point at the error');
  t.match(html, /id="password"[^>]*autofocus/, 'focus goes to the password after an error');
  t.match(html, /<label for="username">Email<\/label>/);
  t.match(html, /type="email"/);
  t.match(html, /Incorrect email or password\./);
  t.match(html, /<title>Sign in · Acme &lt;Intranet&gt;<\/title>/);
  t.match(html, /<img src="data:image\/svg\+xml;base64,/);
  t.match(html, /--on-accent:#0b1020/, 'dark text on a light accent');
  const locked = page.render({ rd: '/', error: 'locked', retryAfterSeconds: 600 });
  t.match(locked, /Try again in 10 minutes/);
  t.notMatch(locked, /aria-invalid="true"/, 'a lockout does not mark the fields invalid');
  t.match(page.render({ rd: '/', signedInAs: 'bob<' }), /signed in as <strong>bob&lt;<\/strong>/);
  t.throws(() => new LoginPage(ctxOf({ login: { branding: { logo: './logo.txt' } } }, dir)), /logo/);
});
