// The server-rendered sign-in page (SPEC 6 `GET /login`): no script, no external asset, every
// interpolated value escaped. Branding (`login.branding`) is read once per loaded config; the
// stylesheet is fixed per config too, so the CSP allows exactly its hash.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { GatewayContext } from '../context.js';
import { cspSources, originPolicy } from '../util/origin.js';

export interface LoginProviderButton {
  readonly label: string;
  readonly href: string;
}

export type LoginPageError = 'invalid_credentials' | 'bad_request' | 'locked' | 'store_unavailable' | 'mfa_required';

export interface LoginPageModel {
  /** Validated redirect target, carried in a hidden field (validated again on POST). */
  readonly rd: string;
  /** The login name typed before, shown again after an error (never the password). */
  readonly username?: string | undefined;
  readonly error?: LoginPageError | undefined;
  /** Seconds until a locked account or address may try again. */
  readonly retryAfterSeconds?: number | undefined;
  /** Set when the browser already holds a live session. */
  readonly signedInAs?: string | undefined;
}

export const DEFAULT_NAME = 'authgate';
export const DEFAULT_COLOR = '#4f46e5';
const LOGO_TYPES: Record<string, string> = { '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif' };
const MAX_LOGO_BYTES = 256 * 1024;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => HTML_ESCAPES[c] as string);
}

/** Reads `login.branding.logo` once: a data: URL as is, or a file inlined as one. */
export function loadLogo(logo: string | undefined, configDir: string): string | undefined {
  if (logo === undefined) return undefined;
  if (/^data:image\/(svg\+xml|png|jpeg|webp|gif)(;base64)?,/i.test(logo)) return logo;
  const type = LOGO_TYPES[extname(logo).toLowerCase()];
  if (type === undefined) throw new Error('login.branding.logo: expected an .svg, .png, .jpg, .webp or .gif file, or a data: URL');
  const bytes = readFileSync(resolve(configDir, logo));
  if (bytes.length > MAX_LOGO_BYTES) throw new Error(`login.branding.logo: the file is larger than ${MAX_LOGO_BYTES / 1024} KiB`);
  return `data:${type};base64,${bytes.toString('base64')}`;
}

function parseHex(color: string): [number, number, number] {
  const hex = color.slice(1);
  const full = hex.length === 3 ? hex.split('').map((c) => c + c).join('') : hex;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
}

/** WCAG relative luminance of an sRGB colour. */
function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Text colour with the better contrast on the accent colour. */
function onColor(color: string): string {
  const l = luminance(parseHex(color));
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? '#0b1020' : '#ffffff';
}

function mix(color: string, other: [number, number, number], amount: number): string {
  const c = parseHex(color);
  const m = c.map((v, i) => Math.round(v * (1 - amount) + other[i]! * amount));
  return `#${m.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

function rgba(color: string, alpha: number): string {
  return `rgba(${parseHex(color).join(',')},${alpha})`;
}

export function stylesheet(accent: string): string {
  const hover = mix(accent, [0, 0, 0], 0.12);
  const soft = mix(accent, [255, 255, 255], 0.9);
  return `
:root{--accent:${accent};--accent-hover:${hover};--accent-soft:${soft};--on-accent:${onColor(accent)};--bg:#f4f5f8;--card:#fff;--text:#161a23;--muted:#5b6272;--border:#d5d9e2;--field:#fff;--danger:#b42318;--danger-bg:#fef3f2;--danger-border:#fecdca;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0e1117;--card:#171b24;--text:#e8eaf0;--muted:#a2a9b8;--border:#343b4a;--field:#10141c;--danger:#fda29b;--danger-bg:#2a1715;--danger-border:#7a271a;--accent-soft:#1f2433}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;min-height:100vh;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;display:flex;flex-direction:column;align-items:center;justify-content:center;padding:24px 16px}
main{width:100%;max-width:400px}
.card{background:var(--card);border:1px solid var(--border);border-radius:14px;padding:32px 28px;box-shadow:0 1px 2px rgba(16,24,40,.05),0 12px 32px -12px rgba(16,24,40,.18)}
.brand{display:flex;align-items:center;gap:10px;margin-bottom:24px;color:var(--accent)}
.brand svg,.brand img{width:36px;height:36px;flex:none;display:block;object-fit:contain}
.brand-name{font-weight:650;font-size:1.125rem;color:var(--text);letter-spacing:-.01em;overflow-wrap:anywhere}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 4px;letter-spacing:-.02em}
.lead{margin:0 0 24px;color:var(--muted)}
.alert{border:1px solid var(--danger-border);background:var(--danger-bg);color:var(--danger);border-radius:10px;padding:10px 12px;margin:0 0 20px;font-size:.9375rem;display:flex;gap:8px;align-items:flex-start}
.alert svg{flex:none;width:18px;height:18px;margin-top:3px}
.notice{border:1px solid var(--border);background:var(--accent-soft);border-radius:10px;padding:12px;margin:0 0 20px;font-size:.9375rem}
.notice p{margin:0}
.notice form{margin:8px 0 0}
.field{margin:0 0 16px}
label{display:block;font-weight:600;font-size:.875rem;margin:0 0 6px}
input{display:block;width:100%;font:inherit;color:var(--text);background:var(--field);border:1px solid var(--border);border-radius:10px;padding:10px 12px;min-height:44px;transition:border-color .15s,box-shadow .15s}
input:focus{outline:none;border-color:var(--accent);box-shadow:0 0 0 3px ${rgba(accent, 0.3)}}
input[aria-invalid=true]{border-color:var(--danger)}
.btn{display:flex;width:100%;align-items:center;justify-content:center;gap:8px;min-height:44px;padding:10px 16px;border-radius:10px;font:inherit;font-weight:600;text-decoration:none;cursor:pointer;border:1px solid transparent}
.btn:focus-visible,.link:focus-visible{outline:3px solid ${rgba(accent, 0.55)};outline-offset:2px}
.primary{background:var(--accent);color:var(--on-accent);margin-top:8px}
.primary:hover{background:var(--accent-hover)}
.secondary{background:var(--card);color:var(--text);border-color:var(--border)}
.secondary:hover{background:var(--accent-soft)}
.link{background:none;border:0;padding:0;font:inherit;font-weight:600;color:var(--accent);text-decoration:underline;cursor:pointer}
.divider{display:flex;align-items:center;gap:12px;color:var(--muted);font-size:.875rem;margin:24px 0 16px}
.divider::before,.divider::after{content:"";flex:1;height:1px;background:var(--border)}
.providers{list-style:none;margin:0;padding:0;display:grid;gap:10px}
.foot{text-align:center;color:var(--muted);font-size:.8125rem;margin:20px 0 0}
@media (max-width:420px){body{padding:16px 12px;justify-content:flex-start}.card{padding:24px 20px;border-radius:12px}}
`.trim();
}

export const DEFAULT_LOGO = `<svg viewBox="0 0 32 32" aria-hidden="true" focusable="false"><path fill="currentColor" d="M16 2 4 6.5v8.2c0 7.3 5.1 13.7 12 15.3 6.9-1.6 12-8 12-15.3V6.5L16 2Z"/><path fill="#fff" d="M16 10a4 4 0 0 0-1.6 7.67V22h3.2v-4.33A4 4 0 0 0 16 10Z"/></svg>`;
export const ALERT_ICON = `<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><path fill="currentColor" d="M10 1.7a8.3 8.3 0 1 0 0 16.6 8.3 8.3 0 0 0 0-16.6Zm0 4.1c.5 0 .9.4.9.9v4a.9.9 0 1 1-1.8 0v-4c0-.5.4-.9.9-.9Zm0 8.9a1.1 1.1 0 1 1 0-2.2 1.1 1.1 0 0 1 0 2.2Z"/></svg>`;

function retryText(seconds: number | undefined): string {
  if (seconds === undefined || seconds <= 0) return 'later';
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

function errorText(error: LoginPageError, retryAfterSeconds: number | undefined, loginLabel: string): string {
  switch (error) {
    case 'invalid_credentials':
      return `Incorrect ${loginLabel === 'Email' ? 'email' : 'username'} or password.`;
    case 'bad_request':
      return `Enter your ${loginLabel.toLowerCase()} and password.`;
    case 'locked':
      return `Too many failed sign-in attempts. Try again ${retryText(retryAfterSeconds)}.`;
    case 'store_unavailable':
      return 'Sign-in is temporarily unavailable. Please try again in a moment.';
    case 'mfa_required':
      return 'This account requires a second factor: complete the second step to sign in.';
  }
}

/** The login page of one loaded config: branding, stylesheet and security headers prepared once. */
export class LoginPage {
  readonly #name: string;
  readonly #logo: string | undefined;
  readonly #css: string;
  readonly #loginLabel: string;
  readonly #usernameType: 'text' | 'email';
  readonly #action: string;
  readonly #logoutAction: string;
  readonly #providers: readonly { name: string; label: string }[];
  readonly #prefix: string;
  /** `mfa.passkeyLogin`: offer the password-less sign-in (its page runs the WebAuthn script). */
  readonly #passkeyLogin: boolean;
  /** Response headers of every page (CSP with the stylesheet's hash, framing, referrer, cache). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'prefix' | 'publicUrl'>) {
    const branding = ctx.config.login?.branding;
    this.#name = branding?.name?.trim() || DEFAULT_NAME;
    this.#logo = loadLogo(branding?.logo, ctx.configDir);
    this.#css = stylesheet(branding?.color ?? DEFAULT_COLOR);
    const identifiers = ctx.config.login?.identifiers ?? ['username', 'email'];
    const byUsername = identifiers.includes('username');
    const byEmail = identifiers.includes('email');
    this.#loginLabel = byUsername && byEmail ? 'Username or email' : byEmail ? 'Email' : 'Username';
    this.#usernameType = byEmail && !byUsername ? 'email' : 'text';
    this.#prefix = ctx.prefix;
    this.#action = `${ctx.prefix}/login`;
    this.#logoutAction = `${ctx.prefix}/logout`;
    this.#passkeyLogin = ctx.config.mfa?.passkeyLogin === true;
    this.#providers = Object.entries(ctx.config.authenticators ?? {})
      .filter(([, a]) => a.type === 'oidc')
      .map(([name, a]) => ({ name, label: (a as { label?: string }).label ?? name }));
    const styleHash = createHash('sha256').update(this.#css).digest('base64');
    // A redirect after the form post may go to an allowed other origin: form-action must allow it.
    const formAction = ["'self'", ...cspSources(originPolicy(ctx).redirectOrigins)].join(' ');
    this.headers = {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; style-src 'sha256-${styleHash}'; img-src data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      // Not `no-referrer`: under it browsers send `Origin: null` on the form post, which the
      // CSRF check must refuse. `same-origin` still sends nothing to other sites.
      'referrer-policy': 'same-origin',
      'cross-origin-opener-policy': 'same-origin',
    };
  }

  get productName(): string {
    return this.#name;
  }

  render(model: LoginPageModel): string {
    const e = escapeHtml;
    const error = model.error;
    const fieldError = error === 'invalid_credentials' || error === 'bad_request';
    const errorId = 'login-error';
    const invalid = fieldError ? ` aria-invalid="true" aria-describedby="${errorId}"` : '';
    const username = model.username ?? '';
    const focusPassword = username !== '';
    const logo = this.#logo !== undefined ? `<img src="${e(this.#logo)}" alt="" width="36" height="36">` : DEFAULT_LOGO;
    const rdQuery = model.rd !== '/' ? `?rd=${encodeURIComponent(model.rd)}` : '';

    const parts: string[] = [];
    parts.push(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<link rel="icon" href="data:,">
<title>Sign in · ${e(this.#name)}</title>
<style>${this.#css}</style>
</head>
<body>
<main>
<div class="card">
<div class="brand">${logo}<span class="brand-name">${e(this.#name)}</span></div>
<h1>Sign in</h1>
<p class="lead">to continue to ${e(this.#name)}</p>
`);
    if (error !== undefined) {
      parts.push(`<div class="alert" role="alert" id="${errorId}">${ALERT_ICON}<span>${e(errorText(error, model.retryAfterSeconds, this.#loginLabel))}</span></div>\n`);
    }
    if (model.signedInAs !== undefined) {
      parts.push(`<div class="notice" role="status"><p>You are signed in as <strong>${e(model.signedInAs)}</strong>. Signing in again replaces that session.</p>
<form method="post" action="${e(this.#logoutAction)}"><input type="hidden" name="rd" value="${e(`${this.#action}${rdQuery}`)}"><button type="submit" class="link">Sign out</button></form></div>\n`);
    }
    parts.push(`<form method="post" action="${e(this.#action)}">
<input type="hidden" name="rd" value="${e(model.rd)}">
<div class="field">
<label for="username">${e(this.#loginLabel)}</label>
<input id="username" name="username" type="${this.#usernameType}" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false" required maxlength="254" value="${e(username)}"${invalid}${focusPassword ? '' : ' autofocus'}>
</div>
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${invalid}${focusPassword ? ' autofocus' : ''}>
</div>
<button type="submit" class="btn primary">Sign in</button>
</form>
`);
    if (this.#passkeyLogin) {
      parts.push(`<div class="divider">or</div>\n<a class="btn secondary" href="${e(`${this.#prefix}/mfa${rdQuery}`)}">Sign in with a passkey</a>\n`);
    }
    if (this.#providers.length > 0) {
      parts.push(`<div class="divider">or</div>\n<ul class="providers">\n`);
      for (const p of this.#providers) {
        const href = `${this.#prefix}/oidc/${encodeURIComponent(p.name)}/login${rdQuery}`;
        parts.push(`<li><a class="btn secondary" href="${e(href)}">Continue with ${e(p.label)}</a></li>\n`);
      }
      parts.push(`</ul>\n`);
    }
    parts.push(`</div>
<p class="foot">Secured by authgate</p>
</main>
</body>
</html>
`);
    return parts.join('');
  }
}
