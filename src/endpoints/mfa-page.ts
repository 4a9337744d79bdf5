// The second-factor pages (issue 11): the second step (code, recovery code, email code, passkey),
// the TOTP enrolment (QR code, the secret as text, confirmation, then the recovery codes once)
// and the passkeys page. Same look as the login page (its stylesheet and branding), no external
// asset; the one script (WebAuthn ceremonies, copy button) is fixed, so the CSP allows exactly
// its hash and the stylesheet's. Every interpolated value is escaped.
import type { GatewayContext } from '../context.js';
import type { TotpEnrollment } from '../mfa/service.js';
import type { CredentialView } from '../mfa/webauthn.js';
import { ALERT_ICON, escapeHtml as e, PageShell } from './page-shell.js';

export type MfaPageError = 'invalid_credentials' | 'bad_request' | 'locked' | 'store_unavailable' | 'mfa_required' | 'service_unavailable';

export interface SecondStepModel {
  readonly rd: string;
  readonly methods: readonly string[];
  /** An already signed-in user confirming again (route `require.mfa` / `maxAge`). */
  readonly stepUp: boolean;
  /** No session: only the password-less passkey sign-in (`mfa.passkeyLogin`). */
  readonly passkeyLogin: boolean;
  readonly emailSent?: boolean | undefined;
  readonly error?: MfaPageError | undefined;
  readonly retryAfterSeconds?: number | undefined;
}

export interface EnrolModel {
  readonly rd: string;
  readonly enrollment?: TotpEnrollment | undefined;
  /** After confirmation: shown this once. */
  readonly recoveryCodes?: readonly string[] | undefined;
  readonly error?: MfaPageError | undefined;
}

const EXTRA_CSS = `
.qr{display:flex;justify-content:center;margin:0 0 16px}
.qr svg{width:200px;height:200px;background:#fff;border-radius:8px;padding:4px}
.secret{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9375rem;word-break:break-all;background:var(--accent-soft);border:1px solid var(--border);border-radius:8px;padding:8px 10px;margin:0 0 16px}
.codes{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:1rem;line-height:1.9;columns:2;background:var(--accent-soft);border:1px solid var(--border);border-radius:10px;padding:10px 14px;margin:0 0 16px;white-space:pre}
.row{display:grid;gap:10px;grid-template-columns:1fr 1fr;margin:0 0 8px}
.steps{margin:0 0 16px;padding-left:20px;color:var(--muted)}
details{margin:16px 0 0;border-top:1px solid var(--border);padding-top:12px}
summary{cursor:pointer;font-weight:600;color:var(--accent)}
.list{list-style:none;margin:0 0 16px;padding:0;display:grid;gap:8px}
.list li{border:1px solid var(--border);border-radius:10px;padding:10px 12px}
.muted{color:var(--muted);font-size:.875rem}
.status{min-height:1.5em;color:var(--danger);font-size:.9375rem;margin:8px 0 0}
form.inline{margin:16px 0 0}
`.trim();

// Runs the WebAuthn ceremonies for [data-webauthn] buttons (JSON in and out, same origin) and the
// copy button. No dependency: base64url by hand, as @simplewebauthn/browser would do it.
const SCRIPT = `(()=>{
const enc=(b)=>btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g,'-').replace(/\\//g,'_').replace(/=+$/,'');
const dec=(s)=>{s=s.replace(/-/g,'+').replace(/_/g,'/');while(s.length%4)s+='=';return Uint8Array.from(atob(s),(c)=>c.charCodeAt(0)).buffer};
async function post(url,body){const r=await fetch(url,{method:'POST',headers:{'content-type':'application/json'},credentials:'same-origin',body:JSON.stringify(body)});const j=await r.json().catch(()=>({}));if(!r.ok)throw new Error(j.detail||'The request failed.');return j}
for(const btn of document.querySelectorAll('[data-webauthn]')){btn.addEventListener('click',async()=>{
const out=document.getElementById(btn.dataset.status);if(out)out.textContent='';
const base=btn.dataset.base,rd=btn.dataset.rd||'/';
try{if(btn.dataset.webauthn==='register'){
const o=await post(base+'/mfa/webauthn/register/options',{});
const c=await navigator.credentials.create({publicKey:{...o,challenge:dec(o.challenge),user:{...o.user,id:dec(o.user.id)},excludeCredentials:(o.excludeCredentials||[]).map((x)=>({...x,id:dec(x.id)}))}});
const r=c.response,n=document.getElementById('passkey-name');
await post(base+'/mfa/webauthn/register/verify',{name:n&&n.value?n.value:undefined,response:{id:c.id,rawId:enc(c.rawId),type:c.type,authenticatorAttachment:c.authenticatorAttachment||undefined,clientExtensionResults:c.getClientExtensionResults(),response:{clientDataJSON:enc(r.clientDataJSON),attestationObject:enc(r.attestationObject),transports:r.getTransports?r.getTransports():[]}}});
location.reload();
}else{
const o=await post(base+'/mfa/webauthn/authenticate/options',{});
const c=await navigator.credentials.get({publicKey:{...o,challenge:dec(o.challenge),allowCredentials:(o.allowCredentials||[]).map((x)=>({...x,id:dec(x.id)}))}});
const r=c.response;
const j=await post(base+'/mfa/webauthn/authenticate/verify',{rd,response:{id:c.id,rawId:enc(c.rawId),type:c.type,authenticatorAttachment:c.authenticatorAttachment||undefined,clientExtensionResults:c.getClientExtensionResults(),response:{clientDataJSON:enc(r.clientDataJSON),authenticatorData:enc(r.authenticatorData),signature:enc(r.signature),userHandle:r.userHandle?enc(r.userHandle):undefined}}});
location.assign(j.redirect||rd);
}}catch(err){if(out)out.textContent=err&&err.name==='NotAllowedError'?'The passkey request was cancelled or timed out.':(err&&err.message)||'The passkey did not work.'}
})}
for(const btn of document.querySelectorAll('[data-copy]')){btn.addEventListener('click',async()=>{const t=document.getElementById(btn.dataset.copy).textContent;try{await navigator.clipboard.writeText(t);btn.textContent='Copied'}catch{btn.textContent='Select the codes to copy them'}})}
})();`;

function retryText(seconds: number | undefined): string {
  if (seconds === undefined || seconds <= 0) return 'later';
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

function errorText(error: MfaPageError, retryAfterSeconds: number | undefined): string {
  switch (error) {
    case 'invalid_credentials':
      return 'That code is not valid. Check it and try again.';
    case 'bad_request':
      return 'Enter the code.';
    case 'locked':
      return `Too many attempts. Try again ${retryText(retryAfterSeconds)}.`;
    case 'store_unavailable':
    case 'service_unavailable':
      return 'This is temporarily unavailable. Please try again in a moment.';
    case 'mfa_required':
      return 'Complete the second step first.';
  }
}

export class MfaPages {
  readonly #shell: PageShell;
  readonly #name: string;
  readonly #prefix: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(ctx: Pick<GatewayContext, 'config' | 'configDir' | 'prefix' | 'publicUrl'>) {
    this.#shell = new PageShell(ctx, { extraCss: EXTRA_CSS, scripts: [SCRIPT], connectSelf: true });
    this.#name = this.#shell.name;
    this.#prefix = ctx.prefix;
    this.headers = this.#shell.headers;
  }

  #layout(title: string, lead: string, body: string, script: boolean): string {
    return `${this.#shell.head(title)}<main>
<div class="card">
${this.#shell.brand()}<h1>${e(title)}</h1>
<p class="lead">${e(lead)}</p>
${body}</div>
<p class="foot">Secured by authgate</p>
</main>
${script ? `<script>${SCRIPT}</script>\n` : ''}</body>
</html>
`;
  }

  #alert(error: MfaPageError | undefined, retryAfterSeconds?: number): string {
    if (error === undefined) return '';
    return `<div class="alert" role="alert" id="mfa-error">${ALERT_ICON}<span>${e(errorText(error, retryAfterSeconds))}</span></div>\n`;
  }

  #signOut(): string {
    return `<form class="inline" method="post" action="${e(`${this.#prefix}/logout`)}"><input type="hidden" name="rd" value="${e(`${this.#prefix}/login`)}"><button type="submit" class="link">Cancel and sign out</button></form>\n`;
  }

  secondStep(m: SecondStepModel): string {
    const p = this.#prefix;
    const invalid = m.error === 'invalid_credentials' || m.error === 'bad_request' ? ' aria-invalid="true" aria-describedby="mfa-error"' : '';
    const rd = `<input type="hidden" name="rd" value="${e(m.rd)}">`;
    const parts: string[] = [this.#alert(m.error, m.retryAfterSeconds)];
    const passkeyButton = (label: string) =>
      `<button type="button" class="btn ${m.passkeyLogin ? 'primary' : 'secondary'}" data-webauthn="authenticate" data-base="${e(p)}" data-rd="${e(m.rd)}" data-status="passkey-status">${e(label)}</button>\n<p class="status" id="passkey-status" role="status" aria-live="polite"></p>\n`;
    if (m.passkeyLogin) {
      parts.push(passkeyButton('Sign in with a passkey'));
      parts.push(`<p class="muted">Or <a class="link" href="${e(`${p}/login${m.rd !== '/' ? `?rd=${encodeURIComponent(m.rd)}` : ''}`)}">sign in with your password</a>.</p>\n`);
      return this.#layout('Sign in with a passkey', `to continue to ${this.#name}`, parts.join(''), true);
    }
    const has = (x: string) => m.methods.includes(x);
    if (has('totp')) {
      parts.push(`<form method="post" action="${e(`${p}/mfa/verify`)}">${rd}
<div class="field">
<label for="code">Authentication code</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required autofocus${invalid}>
</div>
<button type="submit" class="btn primary">Verify</button>
</form>\n`);
    }
    if (has('webauthn')) parts.push(`<div class="divider">or</div>\n${passkeyButton('Use a passkey')}`);
    if (has('email')) {
      if (m.emailSent === true) {
        parts.push(`<div class="notice" role="status"><p>If your account has an email address, a code is on its way. It works once.</p></div>
<form method="post" action="${e(`${p}/mfa/email/verify`)}">${rd}
<div class="field">
<label for="email-code">Email code</label>
<input id="email-code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required${has('totp') ? '' : ' autofocus'}>
</div>
<button type="submit" class="btn primary">Verify email code</button>
</form>\n`);
      }
      parts.push(`<form class="inline" method="post" action="${e(`${p}/mfa/email/send`)}">${rd}<button type="submit" class="btn secondary">${m.emailSent === true ? 'Send a new email code' : 'Send me an email code'}</button></form>\n`);
    }
    if (has('recovery')) {
      parts.push(`<details${m.error !== undefined && !has('totp') ? ' open' : ''}><summary>Use a recovery code</summary>
<form method="post" action="${e(`${p}/mfa/verify`)}">${rd}
<div class="field">
<label for="recovery-code">Recovery code</label>
<input id="recovery-code" name="code" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" maxlength="32" required>
</div>
<button type="submit" class="btn secondary">Use recovery code</button>
</form>
</details>\n`);
    }
    if (has('enroll')) parts.push(`<p class="muted">Your account needs a second factor. <a class="link" href="${e(`${p}/mfa/totp?rd=${encodeURIComponent(m.rd)}`)}">Set up an authenticator app</a>.</p>\n`);
    parts.push(this.#signOut());
    const lead = m.stepUp ? 'This page needs your second factor. Confirm it is you.' : 'Enter the code from your authenticator app.';
    return this.#layout(m.stepUp ? 'Confirm it is you' : 'Two-step verification', lead, parts.join(''), has('webauthn'));
  }

  enrol(m: EnrolModel): string {
    const p = this.#prefix;
    if (m.recoveryCodes !== undefined) {
      const text = m.recoveryCodes.join('\n');
      const download = `data:text/plain;charset=utf-8,${encodeURIComponent(`${this.#name} recovery codes\n\n${text}\n`)}`;
      const body = `<div class="notice" role="status"><p>Your authenticator app is set up.</p></div>
<p>Save these recovery codes somewhere safe. Each works once, if you lose your device. They are shown only now.</p>
<pre class="codes" id="recovery-codes" aria-label="Recovery codes">${e(text)}</pre>
<div class="row"><button type="button" class="btn secondary" data-copy="recovery-codes">Copy</button><a class="btn secondary" download="recovery-codes.txt" href="${e(download)}">Download</a></div>
<a class="btn primary" href="${e(m.rd)}">Continue</a>
`;
      return this.#layout('Save your recovery codes', 'Keep them somewhere only you can reach.', body, true);
    }
    const en = m.enrollment;
    if (en === undefined) return this.#layout('Set up an authenticator app', 'The enrolment expired.', `<a class="btn primary" href="${e(`${p}/mfa/totp?rd=${encodeURIComponent(m.rd)}`)}">Start again</a>\n`, false);
    const grouped = en.secret.replace(/(.{4})/g, '$1 ').trim();
    const invalid = m.error === 'invalid_credentials' || m.error === 'bad_request' ? ' aria-invalid="true" aria-describedby="mfa-error"' : '';
    // The QR code is qrcode's own SVG output for the otpauth URL (no external service).
    const body = `${this.#alert(m.error)}<ol class="steps"><li>Scan the QR code with your authenticator app, or enter the key by hand.</li><li>Enter the 6-digit code it shows.</li></ol>
<div class="qr" role="img" aria-label="QR code of your authenticator key">${en.qrSvg}</div>
<p class="muted" id="secret-label">Key for manual entry</p>
<p class="secret" aria-labelledby="secret-label">${e(grouped)}</p>
<form method="post" action="${e(`${p}/mfa/totp/confirm`)}"><input type="hidden" name="rd" value="${e(m.rd)}">
<div class="field">
<label for="code">Authentication code</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required autofocus${invalid}>
</div>
<button type="submit" class="btn primary">Turn on</button>
</form>
${this.#signOut()}`;
    return this.#layout('Set up an authenticator app', 'Protect your account with a second step.', body, false);
  }

  passkeys(m: { credentials: readonly CredentialView[] }): string {
    const p = this.#prefix;
    const items = m.credentials.map((c) => `<li><strong>${e(c.name)}</strong><br><span class="muted">Added ${e(c.createdAt.slice(0, 10))}${c.lastUsedAt !== null ? ` · last used ${e(c.lastUsedAt.slice(0, 10))}` : ''}</span></li>`).join('\n');
    const body = `${m.credentials.length > 0 ? `<ul class="list">\n${items}\n</ul>\n` : '<p class="muted">No passkey or security key yet.</p>\n'}<div class="field">
<label for="passkey-name">Name of the new passkey</label>
<input id="passkey-name" name="name" type="text" maxlength="64" autocomplete="off" placeholder="e.g. Laptop">
</div>
<button type="button" class="btn primary" data-webauthn="register" data-base="${e(p)}" data-status="passkey-status">Add a passkey</button>
<p class="status" id="passkey-status" role="status" aria-live="polite"></p>
`;
    return this.#layout('Passkeys and security keys', 'Sign in with your device instead of a code.', body, true);
  }
}
