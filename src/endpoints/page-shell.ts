// The shell every server-rendered page of the gateway shares (login, account): branding
// (`login.branding`), one stylesheet per loaded config, and the security headers whose CSP allows
// exactly that stylesheet's hash (and a page's own inline scripts' hashes, if it has any).
// No external asset; every interpolated value goes through escapeHtml.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { GatewayContext } from '../context.js';
import { cspSources, originPolicy } from '../util/origin.js';

const DEFAULT_NAME = 'authgate';
const DEFAULT_COLOR = '#4f46e5';
const LOGO_TYPES: Record<string, string> = { '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif' };
const MAX_LOGO_BYTES = 256 * 1024;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => HTML_ESCAPES[c] as string);
}

/** Reads `login.branding.logo` once: a data: URL as is, or a file inlined as one. */
function loadLogo(logo: string | undefined, configDir: string): string | undefined {
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

function stylesheet(accent: string): string {
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

const DEFAULT_LOGO = `<svg viewBox="0 0 32 32" aria-hidden="true" focusable="false"><path fill="currentColor" d="M16 2 4 6.5v8.2c0 7.3 5.1 13.7 12 15.3 6.9-1.6 12-8 12-15.3V6.5L16 2Z"/><path fill="#fff" d="M16 10a4 4 0 0 0-1.6 7.67V22h3.2v-4.33A4 4 0 0 0 16 10Z"/></svg>`;
export const ALERT_ICON = `<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><path fill="currentColor" d="M10 1.7a8.3 8.3 0 1 0 0 16.6 8.3 8.3 0 0 0 0-16.6Zm0 4.1c.5 0 .9.4.9.9v4a.9.9 0 1 1-1.8 0v-4c0-.5.4-.9.9-.9Zm0 8.9a1.1 1.1 0 1 1 0-2.2 1.1 1.1 0 0 1 0 2.2Z"/></svg>`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

interface PageShellOptions {
  /** Rules only this page needs, appended to the shared stylesheet. */
  readonly extraCss?: string | undefined;
  /** Inline scripts the page embeds verbatim (the CSP allows exactly their hashes). */
  readonly scripts?: readonly string[] | undefined;
  /** The page's script calls the gateway's own JSON endpoints (fetch): `connect-src 'self'`. */
  readonly connectSelf?: boolean | undefined;
}

/** Branding, stylesheet and response headers of one kind of page, prepared once per loaded config. */
export class PageShell {
  readonly name: string;
  /** The brand mark: the configured logo as an <img>, or the default shield. */
  readonly logoHtml: string;
  readonly css: string;
  /** Response headers of every page (CSP with the stylesheet's hash, framing, referrer, cache). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'prefix' | 'publicUrl'>, opts: PageShellOptions = {}) {
    const branding = ctx.config.login?.branding;
    this.name = branding?.name?.trim() || DEFAULT_NAME;
    const logo = loadLogo(branding?.logo, ctx.configDir);
    this.logoHtml = logo !== undefined ? `<img src="${escapeHtml(logo)}" alt="" width="36" height="36">` : DEFAULT_LOGO;
    this.css = stylesheet(branding?.color ?? DEFAULT_COLOR) + (opts.extraCss === undefined ? '' : `\n${opts.extraCss.trim()}`);
    const scripts = opts.scripts ?? [];
    // A redirect after a form post may go to an allowed other origin: form-action must allow it.
    const formAction = ["'self'", ...cspSources(originPolicy(ctx).redirectOrigins)].join(' ');
    const scriptSrc = (scripts.length > 0 ? `; script-src ${scripts.map(sha256).join(' ')}` : '') + (opts.connectSelf === true ? "; connect-src 'self'" : '');
    this.headers = {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; style-src ${sha256(this.css)}${scriptSrc}; img-src data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      // Not `no-referrer`: under it browsers send `Origin: null` on a form post, which the
      // CSRF check must refuse. `same-origin` still sends nothing to other sites.
      'referrer-policy': 'same-origin',
      'cross-origin-opener-policy': 'same-origin',
    };
  }

  /** `<!doctype html>` through the opening `<body>`, with the page title and the stylesheet. */
  head(title: string): string {
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)} · ${escapeHtml(this.name)}</title>
<style>${this.css}</style>
</head>
<body>
`;
  }

  /** The brand line at the top of a card. */
  brand(): string {
    return `<div class="brand">${this.logoHtml}<span class="brand-name">${escapeHtml(this.name)}</span></div>\n`;
  }
}
