// Provider kind `github` (OAuth2, not OIDC): authorize + token exchange (with PKCE) + the REST
// API. User = the GitHub login, email = the verified primary address only; orgs and teams come
// from the API with Link pagination, and an org that has not approved this OAuth app is told
// apart from one the user is not a member of. GitHub Enterprise: `baseUrl` and `apiUrl`.
import { request, type Dispatcher } from 'undici';
import { Agent } from 'undici';
import * as client from 'openid-client';
import type { GatewayContext } from '../context.js';
import { durationMs } from '../util/duration.js';
import type { OidcAuthenticatorConfig } from './presets.js';
import { OidcLoginError, type AuthorizationOptions, type LoginFlow, type LoginProvider, type ProviderIdentity } from './types.js';

const MAX_PAGES = 10;
const MAX_BODY_BYTES = 1024 * 1024;

interface ApiResponse {
  status: number;
  body: unknown;
  next: string | undefined;
}

/** The `rel="next"` target of a Link header (RFC 8288), if any. */
export function nextLink(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (value === undefined) return undefined;
  for (const part of value.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?([^";]+)"?/.exec(part.trim());
    if (m?.[2]?.split(/\s+/).includes('next')) return m[1];
  }
  return undefined;
}

export class GithubProvider implements LoginProvider {
  readonly kind = 'github' as const;
  readonly #cfg: OidcAuthenticatorConfig;
  readonly #ctx: GatewayContext;
  readonly #baseUrl: string;
  readonly #apiUrl: string;
  readonly #timeoutMs: number;
  readonly #agent: Agent;

  constructor(
    readonly name: string,
    cfg: OidcAuthenticatorConfig,
    ctx: GatewayContext,
  ) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.#baseUrl = (cfg.baseUrl ?? 'https://github.com').replace(/\/+$/, '');
    this.#apiUrl = (cfg.apiUrl ?? (cfg.baseUrl !== undefined ? `${this.#baseUrl}/api/v3` : 'https://api.github.com')).replace(/\/+$/, '');
    this.#timeoutMs = durationMs(cfg.timeout, '3s');
    this.#agent = new Agent({ connect: { timeout: this.#timeoutMs }, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs, connections: 8 });
  }

  /** The identity's issuer: GitHub has none, so the instance's base URL stands in for it. */
  get issuer(): string {
    return `github:${this.#baseUrl}`;
  }

  async available(): Promise<boolean> {
    return true;
  }

  async ready(): Promise<'ok'> {
    return 'ok';
  }

  async authorizationUrl(flow: LoginFlow, redirectUri: string, _opts: AuthorizationOptions): Promise<URL> {
    const url = new URL(`${this.#baseUrl}/login/oauth/authorize`);
    url.search = new URLSearchParams({
      client_id: this.#cfg.clientId,
      redirect_uri: redirectUri,
      scope: (this.#cfg.scopes ?? ['read:org', 'user:email']).join(' '),
      state: flow.state,
      code_challenge: await client.calculatePKCECodeChallenge(flow.codeVerifier),
      code_challenge_method: 'S256',
      allow_signup: 'false',
    }).toString();
    return url;
  }

  async finishLogin(callbackUrl: URL, flow: LoginFlow, redirectUri: string): Promise<ProviderIdentity> {
    const params = callbackUrl.searchParams;
    const error = params.get('error');
    if (error === 'access_denied') throw new OidcLoginError('forbidden', 'Sign-in was cancelled or refused at GitHub.', 'access_denied');
    if (error !== null) throw new OidcLoginError('bad_request', 'GitHub reported an error. Please try again.', `authorization_error: ${error.slice(0, 64)}`);
    const code = params.get('code');
    if (code === null || code === '') throw new OidcLoginError('bad_request', 'The sign-in response is incomplete. Please sign in again.', 'no_code');
    const token = await this.#exchange(code, flow, redirectUri);

    const user = await this.#api('/user', token);
    const u = user.body as { login?: unknown; id?: unknown } | null;
    if (user.status !== 200 || typeof u?.login !== 'string' || (typeof u.id !== 'number' && typeof u.id !== 'string')) {
      throw new OidcLoginError('bad_request', 'GitHub did not say who you are.', `user_lookup: HTTP ${user.status}`);
    }
    const emails = await this.#api('/user/emails', token);
    const list = Array.isArray(emails.body) ? (emails.body as { email?: unknown; primary?: unknown; verified?: unknown }[]) : [];
    const primary = list.find((e) => e.primary === true && e.verified === true && typeof e.email === 'string');

    const orgs = await this.#paginate('/user/orgs?per_page=100', token);
    const orgLogins = orgs.map((o) => (o as { login?: unknown }).login).filter((l): l is string => typeof l === 'string');
    const groups = [...orgLogins];
    if ((this.#cfg.allowedTeams ?? []).length > 0) {
      for (const t of await this.#paginate('/user/teams?per_page=100', token)) {
        const team = t as { slug?: unknown; organization?: { login?: unknown } };
        if (typeof team.slug === 'string' && typeof team.organization?.login === 'string') groups.push(`${team.organization.login}/${team.slug}`);
      }
    }
    await this.#checkOrgs(orgLogins, token);
    const teams = this.#cfg.allowedTeams ?? [];
    if (teams.length > 0 && !teams.some((t) => groups.some((g) => g.toLowerCase() === t.toLowerCase()))) {
      throw new OidcLoginError('forbidden', 'Your GitHub account is not in a team that may sign in here.', 'team_not_allowed');
    }
    return {
      iss: this.issuer,
      sub: String(u.id),
      user: u.login,
      email: primary?.email as string | undefined,
      emailVerified: primary !== undefined,
      groups: groups.filter((g) => g.length <= 256 && !g.includes(',')),
      amr: [],
      authTime: Math.floor(Date.now() / 1000),
    };
  }

  /** allowedOrgs: a member passes; otherwise say whether the org has not approved this app. */
  async #checkOrgs(memberOf: readonly string[], token: string): Promise<void> {
    const allowed = this.#cfg.allowedOrgs ?? [];
    if (allowed.length === 0) return;
    const lower = new Set(memberOf.map((o) => o.toLowerCase()));
    if (allowed.some((o) => lower.has(o.toLowerCase()))) return;
    // /user/orgs hides orgs with OAuth app access restrictions: ask about each allowed org directly.
    let restricted = false;
    for (const org of allowed) {
      const m = await this.#api(`/user/memberships/orgs/${encodeURIComponent(org)}`, token);
      if (m.status === 200 && (m.body as { state?: unknown } | null)?.state === 'active') return;
      if (m.status === 403) restricted = true;
    }
    if (restricted) {
      throw new OidcLoginError('forbidden', 'Your GitHub organization has not approved this application yet. Ask an organization owner to grant it access, then try again.', 'org_not_approved');
    }
    throw new OidcLoginError('forbidden', 'Your GitHub account is not a member of an organization that may sign in here.', 'org_not_allowed');
  }

  async #exchange(code: string, flow: LoginFlow, redirectUri: string): Promise<string> {
    const body = new URLSearchParams({ client_id: this.#cfg.clientId, code, redirect_uri: redirectUri, code_verifier: flow.codeVerifier });
    if (typeof this.#cfg.clientSecret === 'string') body.set('client_secret', this.#cfg.clientSecret);
    const res = await this.#fetch(`${this.#baseUrl}/login/oauth/access_token`, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString() });
    const json = res.body as { access_token?: unknown; error?: unknown } | null;
    if (res.status !== 200 || typeof json?.access_token !== 'string' || json.access_token === '') {
      const why = typeof json?.error === 'string' ? json.error.slice(0, 64) : `HTTP ${res.status}`;
      throw new OidcLoginError('bad_request', 'This sign-in link was already used or has expired. Please sign in again.', `token_error: ${why}`);
    }
    return json.access_token;
  }

  async #paginate(path: string, token: string): Promise<unknown[]> {
    const out: unknown[] = [];
    let url: string | undefined = `${this.#apiUrl}${path}`;
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      // Only follow links to the configured API host: a Link header must not send the token elsewhere.
      if (new URL(url).origin !== new URL(this.#apiUrl).origin) break;
      const res = await this.#fetch(url, { method: 'GET', headers: this.#apiHeaders(token) });
      if (res.status !== 200 || !Array.isArray(res.body)) break;
      out.push(...(res.body as unknown[]));
      url = res.next;
    }
    return out;
  }

  #api(path: string, token: string): Promise<ApiResponse> {
    return this.#fetch(`${this.#apiUrl}${path}`, { method: 'GET', headers: this.#apiHeaders(token) });
  }

  #apiHeaders(token: string): Record<string, string> {
    return { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'authgate' };
  }

  async #fetch(url: string, opts: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string }): Promise<ApiResponse> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { ...opts, dispatcher: this.#agent, signal: AbortSignal.timeout(this.#timeoutMs * 2) });
    } catch (err) {
      this.#ctx.log.warn({ provider: this.name, err: err instanceof Error ? err.message : String(err) }, 'GitHub request failed');
      throw new OidcLoginError('service_unavailable', 'GitHub cannot be reached right now. Please try again in a moment.', 'provider_unreachable');
    }
    res.body.on('error', () => undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        throw new OidcLoginError('bad_request', 'GitHub sent an unexpected answer.', 'response_too_large');
      }
      chunks.push(chunk as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body, next: nextLink(res.headers.link) };
  }

  endSessionUrl(): undefined {
    return undefined; // GitHub has no end-session endpoint: logout ends the gateway session only.
  }

  async close(): Promise<void> {
    await this.#agent.close().catch(() => undefined);
  }
}
