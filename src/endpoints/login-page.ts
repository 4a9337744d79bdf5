// The server-rendered sign-in page (SPEC 6 `GET /login`): no script, no external asset, every
// interpolated value escaped. Branding, stylesheet and headers come from the shared page shell
// (page-shell.ts), prepared once per loaded config.
import type { GatewayContext } from '../context.js';
import { ALERT_ICON, escapeHtml, PageShell } from './page-shell.js';

export { escapeHtml } from './page-shell.js';


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
  /** A sign-in problem told in words (OIDC: provider down, sign-in expired, not allowed). */
  readonly message?: string | undefined;
}

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
      return 'This account requires a second factor, which cannot be completed here yet. Contact your administrator.';
  }
}

/** The login page of one loaded config: branding, stylesheet and security headers prepared once. */
export class LoginPage {
  readonly #shell: PageShell;
  readonly #loginLabel: string;
  readonly #usernameType: 'text' | 'email';
  readonly #action: string;
  readonly #logoutAction: string;
  readonly #providers: readonly { name: string; label: string; icon: string | undefined }[];
  readonly #prefix: string;
  /** `mfa.passkeyLogin`: offer the password-less sign-in (its page runs the WebAuthn script). */
  readonly #passkeyLogin: boolean;
  /** Response headers of every page (CSP with the stylesheet's hash, framing, referrer, cache). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'prefix' | 'publicUrl'>) {
    this.#shell = new PageShell(ctx);
    this.headers = this.#shell.headers;
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
      .map(([name, a]) => ({ name, label: (a as { label?: string }).label ?? name, icon: (a as { icon?: string }).icon }));
  }

  get productName(): string {
    return this.#shell.name;
  }

  render(model: LoginPageModel): string {
    const e = escapeHtml;
    const error = model.error;
    const fieldError = error === 'invalid_credentials' || error === 'bad_request';
    const errorId = 'login-error';
    const invalid = fieldError ? ` aria-invalid="true" aria-describedby="${errorId}"` : '';
    const username = model.username ?? '';
    const focusPassword = username !== '';
    const rdQuery = model.rd !== '/' ? `?rd=${encodeURIComponent(model.rd)}` : '';

    const parts: string[] = [];
    parts.push(`${this.#shell.head('Sign in')}<main>
<div class="card">
${this.#shell.brand()}<h1>Sign in</h1>
<p class="lead">to continue to ${e(this.#shell.name)}</p>
`);
    if (model.message !== undefined) {
      parts.push(`<div class="alert" role="alert" id="${errorId}">${ALERT_ICON}<span>${e(model.message)}</span></div>\n`);
    } else if (error !== undefined) {
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
        const icon = p.icon !== undefined ? `<img src="${e(p.icon)}" alt="" width="18" height="18"> ` : '';
        parts.push(`<li><a class="btn secondary" href="${e(href)}">${icon}Continue with ${e(p.label)}</a></li>\n`);
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
