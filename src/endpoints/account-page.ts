// The self-service account page (SPEC 6 `GET /account`), rendered on the server in the login
// page's shell: the user's sessions on every instance, API tokens, and MFA methods when there are
// any. Every action is a plain form post carrying the session's form token (no JavaScript
// needed); the one script only reveals "Copy" buttons for a new token's secret.
import type { GatewayContext } from '../context.js';
import type { SessionRecord } from '../sessions/types.js';
import type { ApiTokenInfo } from '../tokens/api-tokens.js';
import { describeDevice } from '../util/user-agent.js';
import { ALERT_ICON, escapeHtml as e, PageShell } from './page-shell.js';

/**
 * One second factor as the account page shows it. The MFA service supplies these (TOTP,
 * passkeys with their names, recovery codes left); each action is a POST form to one of its
 * endpoints, sent with the page's form token in `_csrf`.
 */
export interface MfaFactor {
  readonly kind: 'totp' | 'webauthn' | 'email' | 'recovery';
  /** e.g. "Authenticator app", a passkey's name, "Recovery codes". */
  readonly label: string;
  /** e.g. "Added 1 Dec 2026", "7 of 10 left". */
  readonly detail?: string | undefined;
  readonly actions: readonly MfaAction[];
  /** Pages where the factor is managed (the MFA pages: enrolment, passkeys). */
  readonly links?: readonly { readonly label: string; readonly href: string }[] | undefined;
}

interface MfaAction {
  readonly label: string;
  /** Path the form posts to, e.g. `/.auth/mfa/webauthn/credentials/<id>/delete`. */
  readonly action: string;
  /** Hidden fields besides `_csrf`. */
  readonly fields?: Readonly<Record<string, string>> | undefined;
  /** Shown as a destructive action. */
  readonly danger?: boolean | undefined;
}

type AccountNotice = 'session-ended' | 'others-ended' | 'token-revoked';

const NOTICES: Record<AccountNotice, string> = {
  'session-ended': 'The session was ended on every device.',
  'others-ended': 'All your other sessions were ended.',
  'token-revoked': 'The token was revoked. It no longer works anywhere.',
};

export const isAccountNotice = (v: unknown): v is AccountNotice => typeof v === 'string' && Object.hasOwn(NOTICES, v);

export interface AccountPageModel {
  readonly user: string;
  readonly email?: string | undefined;
  /** The session's synchronizer token, sent back by every form. */
  readonly formToken: string;
  readonly currentSessionId: string;
  readonly sessions: readonly SessionRecord[];
  readonly tokens: readonly ApiTokenInfo[];
  /** Empty: the MFA section is not rendered. */
  readonly mfaFactors: readonly MfaFactor[];
  readonly notice?: AccountNotice | undefined;
  /** A token just created: its secret, shown this once. */
  readonly createdToken?: { readonly name: string; readonly token: string; readonly expiresAt: number } | undefined;
  /** Why the token form was refused, with what was typed. */
  readonly tokenError?: { readonly message: string; readonly name: string; readonly ttl: string; readonly scopes: string } | undefined;
  /** Epoch ms (for "last seen 5 minutes ago"). */
  readonly now: number;
}

/** The token lifetimes offered by the form (values as /tokens accepts them). */
const TTL_CHOICES: readonly [string, string][] = [['1d', '1 day'], ['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['365d', '1 year']];

const COPY_SCRIPT =
  "for(const b of document.querySelectorAll('button[data-copy]')){b.hidden=false;b.addEventListener('click',()=>{const f=document.getElementById(b.dataset.copy);navigator.clipboard.writeText(f.value).then(()=>{b.textContent='Copied';},()=>{f.focus();f.select();});});}";

const ACCOUNT_CSS = `
main.wide{max-width:720px}
.card+.card{margin-top:16px}
:root{--ok:#05603a;--ok-bg:#ecfdf3;--ok-border:#abefc6}
@media (prefers-color-scheme:dark){:root{--ok:#75e0a7;--ok-bg:#0f2a1e;--ok-border:#085d3a}}
.top{display:flex;align-items:flex-start;justify-content:space-between;gap:12px;flex-wrap:wrap}
.top .brand{margin-bottom:16px}
.intro .lead{margin-bottom:0}
.intro .success{margin:16px 0 0}
h2{font-size:1.125rem;line-height:1.3;margin:0 0 4px;letter-spacing:-.01em}
.section-lead{margin:0 0 16px;color:var(--muted);font-size:.9375rem}
.items{list-style:none;margin:0;padding:0}
.item{display:flex;gap:8px 12px;align-items:center;justify-content:space-between;flex-wrap:wrap;padding:12px 0;border-top:1px solid var(--border)}
.item:first-child{border-top:0;padding-top:0}
.item-main{min-width:0;flex:1 1 240px}
.item-title{margin:0;font-weight:600;overflow-wrap:anywhere}
.meta{color:var(--muted);font-size:.875rem;margin:2px 0 0;overflow-wrap:anywhere}
.item form{margin:0}
.badge{display:inline-block;font-size:.75rem;font-weight:600;line-height:1.5;padding:0 8px;border-radius:999px;background:var(--accent-soft);color:var(--text);border:1px solid var(--border);margin-left:6px;vertical-align:1px;white-space:nowrap}
.btn.small{width:auto;min-height:40px;padding:6px 14px;font-size:.875rem}
.danger{background:var(--card);color:var(--danger);border-color:var(--danger-border)}
.danger:hover{background:var(--danger-bg)}
.actions{display:flex;gap:8px;flex-wrap:wrap;margin-top:16px}
.actions form{margin:0}
.grid{display:grid;grid-template-columns:2fr 1fr;gap:0 12px}
select{display:block;width:100%;font:inherit;color:var(--text);background:var(--field);border:1px solid var(--border);border-radius:10px;padding:10px 12px;min-height:44px}
select:focus{outline:none;border-color:var(--accent)}
.hint{color:var(--muted);font-size:.8125rem;margin:4px 0 0}
.success{border:1px solid var(--ok-border);background:var(--ok-bg);color:var(--text);border-radius:10px;padding:12px;margin:0 0 16px;font-size:.9375rem}
.success p{margin:0}
.secret{display:flex;gap:8px;margin-top:8px}
.secret input{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875rem;min-width:0}
.empty{color:var(--muted);margin:0 0 4px}
.subhead{font-size:1rem;margin:24px 0 8px}
.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875em;overflow-wrap:anywhere}
@media (max-width:420px){.grid{grid-template-columns:1fr}.btn.small{min-height:44px}}
`;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "4 Dec 2026, 14:02 UTC": the same for every reader, whatever their clock says. */
function formatTime(ms: number): string {
  const d = new Date(ms);
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${hh}:${mm} UTC`;
}

function timeTag(ms: number, text = formatTime(ms)): string {
  return `<time datetime="${new Date(ms).toISOString()}">${e(text)}</time>`;
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return 'just now';
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  if (s < 3600) return plural(Math.floor(s / 60), 'minute');
  if (s < 86_400) return plural(Math.floor(s / 3600), 'hour');
  return plural(Math.floor(s / 86_400), 'day');
}

function methodLabel(method: string): string {
  if (method === 'session') return 'password';
  if (method.startsWith('oidc:')) return `single sign-on (${method.slice(5)})`;
  return method;
}

/** A POST form with the form token and hidden fields, around one button. */
function actionForm(action: string, formToken: string, button: string, fields: Readonly<Record<string, string>> = {}, cls = 'btn secondary small'): string {
  const hidden = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${e(k)}" value="${e(v)}">`).join('');
  return `<form method="post" action="${e(action)}"><input type="hidden" name="_csrf" value="${e(formToken)}">${hidden}<button type="submit" class="${cls}">${button}</button></form>`;
}

/**
 * The MFA section: one row per factor with its actions, or nothing at all when the user has no
 * factor (or no MFA service is present). The MFA service calls this with its factors.
 */
export function renderMfaSection(factors: readonly MfaFactor[], formToken: string): string {
  if (factors.length === 0) return '';
  const rows = factors.map((f) => {
    const buttons = f.actions.map((a) => actionForm(a.action, formToken, e(a.label), a.fields, a.danger === true ? 'btn danger small' : 'btn secondary small')).join('')
      + (f.links ?? []).map((l) => `<a class="btn secondary small" href="${e(l.href)}">${e(l.label)}</a>`).join('');
    return `<li class="item"><div class="item-main"><p class="item-title">${e(f.label)}</p>${f.detail !== undefined ? `<p class="meta">${e(f.detail)}</p>` : ''}</div>${buttons}</li>`;
  });
  return `<section class="card" aria-labelledby="mfa-h"><h2 id="mfa-h">Two-factor authentication</h2>
<p class="section-lead">The second factors that protect your sign-in.</p>
<ul class="items">${rows.join('\n')}</ul>
</section>
`;
}

/** The account page of one loaded config. */
export class AccountPage {
  readonly #shell: PageShell;
  readonly #prefix: string;
  readonly #defaultTtlLabel: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'prefix' | 'publicUrl'>) {
    this.#shell = new PageShell(ctx, { extraCss: ACCOUNT_CSS, scripts: [COPY_SCRIPT] });
    this.headers = this.#shell.headers;
    this.#prefix = ctx.prefix;
    this.#defaultTtlLabel = ctx.config.tokens?.defaultTtl !== undefined ? String(ctx.config.tokens.defaultTtl) : '90 days';
  }

  render(m: AccountPageModel): string {
    const p = this.#prefix;
    const parts: string[] = [this.#shell.head('Your account'), '<main class="wide">\n'];
    parts.push(`<div class="card intro"><div class="top">${this.#shell.brand()}${actionForm(`${p}/logout`, m.formToken, 'Sign out', { rd: `${p}/login` })}</div>
<h1>Your account</h1>
<p class="lead">Signed in as <strong>${e(m.user)}</strong>${m.email !== undefined ? ` (${e(m.email)})` : ''}</p>
`);
    if (m.notice !== undefined) parts.push(`<div class="success" role="status"><p>${e(NOTICES[m.notice])}</p></div>\n`);
    parts.push('</div>\n');
    parts.push(this.#sessions(m), this.#tokens(m), renderMfaSection(m.mfaFactors, m.formToken));
    parts.push(`<p class="foot">Secured by authgate</p>
</main>
<script>${COPY_SCRIPT}</script>
</body>
</html>
`);
    return parts.join('');
  }

  #sessions(m: AccountPageModel): string {
    const p = this.#prefix;
    const rows = m.sessions.map((s) => {
      const current = s.id === m.currentSessionId;
      const device = describeDevice(s.userAgent);
      const end = current ? '' : actionForm(`${p}/account/sessions/end`, m.formToken, `End<span class="sr-only"> session on ${e(device)}</span>`, { id: s.id });
      return `<li class="item"><div class="item-main"><p class="item-title">${e(device)}${current ? '<span class="badge">This session</span>' : ''}</p>
<p class="meta">${e(s.ip ?? 'unknown address')} · signed in with ${e(methodLabel(s.method))} · ${timeTag(s.createdAt)}</p>
<p class="meta">Last active ${timeTag(s.lastSeenAt, current ? 'now' : ago(s.lastSeenAt, m.now))}</p></div>${end}</li>`;
    });
    const others = m.sessions.some((s) => s.id !== m.currentSessionId);
    return `<section class="card" aria-labelledby="sessions-h"><h2 id="sessions-h">Where you're signed in</h2>
<p class="section-lead">Your active sessions on every device. End any you do not recognise.</p>
<ul class="items">${rows.join('\n')}</ul>
${others ? `<div class="actions">${actionForm(`${p}/account/sessions/end-others`, m.formToken, 'End all other sessions', {}, 'btn danger small')}</div>` : ''}
</section>
`;
  }

  #tokens(m: AccountPageModel): string {
    const p = this.#prefix;
    const parts: string[] = [`<section class="card" aria-labelledby="tokens-h"><h2 id="tokens-h">API tokens</h2>
<p class="section-lead">Tokens let scripts and tools call the API as you. Send one as <code>Authorization: Token &lt;token&gt;</code>.</p>
`];
    if (m.createdToken !== undefined) {
      const c = m.createdToken;
      parts.push(`<div class="success" role="status"><p><strong>Token “${e(c.name)}” created.</strong> Copy it now: it is shown only this once. It expires ${timeTag(c.expiresAt * 1000)}.</p>
<div class="secret"><label class="sr-only" for="new-token">New API token</label><input id="new-token" type="text" readonly value="${e(c.token)}" autocomplete="off" spellcheck="false"><button type="button" class="btn secondary small" data-copy="new-token" hidden>Copy</button></div></div>
`);
    }
    if (m.tokens.length === 0) parts.push('<p class="empty">You have no API tokens.</p>\n');
    else {
      const nowSeconds = Math.floor(m.now / 1000);
      const rows = m.tokens.map((t) => {
        const expired = t.expiresAt <= nowSeconds;
        const scopes = t.scopes.length > 0 ? `scopes ${t.scopes.join(' ')}` : 'no scopes';
        const used = t.lastUsedAt === null ? 'never used' : `last used ${ago(t.lastUsedAt * 1000, m.now)}`;
        return `<li class="item"><div class="item-main"><p class="item-title">${e(t.name)}${expired ? '<span class="badge">Expired</span>' : ''}</p>
<p class="meta">${e(scopes)} · created ${timeTag(t.createdAt * 1000)} · ${expired ? 'expired' : 'expires'} ${timeTag(t.expiresAt * 1000)} · ${e(used)}</p></div>${actionForm(`${p}/account/tokens/revoke`, m.formToken, `Revoke<span class="sr-only"> token ${e(t.name)}</span>`, { id: t.id }, 'btn danger small')}</li>`;
      });
      parts.push(`<ul class="items">${rows.join('\n')}</ul>\n`);
    }
    const err = m.tokenError;
    const invalid = err !== undefined ? ' aria-invalid="true" aria-describedby="token-error"' : '';
    const ttl = err?.ttl ?? '';
    parts.push(`<h3 class="subhead">Create a token</h3>
${err !== undefined ? `<div class="alert" role="alert" id="token-error">${ALERT_ICON}<span>${e(err.message)}</span></div>\n` : ''}<form method="post" action="${e(`${p}/account/tokens`)}">
<input type="hidden" name="_csrf" value="${e(m.formToken)}">
<div class="grid"><div class="field"><label for="token-name">Name</label>
<input id="token-name" name="name" type="text" required maxlength="100" placeholder="e.g. CI deploys" value="${e(err?.name ?? '')}"${invalid}></div>
<div class="field"><label for="token-ttl">Expires after</label>
<select id="token-ttl" name="ttl"><option value=""${ttl === '' ? ' selected' : ''}>Default (${e(this.#defaultTtlLabel)})</option>${TTL_CHOICES.map(([v, label]) => `<option value="${v}"${ttl === v ? ' selected' : ''}>${label}</option>`).join('')}</select></div></div>
<div class="field"><label for="token-scopes">Scopes <span class="meta">(optional)</span></label>
<input id="token-scopes" name="scopes" type="text" maxlength="2000" autocapitalize="none" spellcheck="false" placeholder="orders:read orders:write" aria-describedby="token-scopes-hint" value="${e(err?.scopes ?? '')}">
<p class="hint" id="token-scopes-hint">Separated by spaces. Routes that require a scope accept the token only with it.</p></div>
<button type="submit" class="btn primary">Create token</button>
</form>
</section>
`);
    return parts.join('');
  }
}
