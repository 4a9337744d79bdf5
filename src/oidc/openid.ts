// Provider kind `oidc`: any OpenID Provider through openid-client 6 (authorization code + PKCE
// S256 + state + nonce, RFC 9207 `iss`). openid-client checks the ID token's claims (iss, aud,
// azp, exp, iat, nonce, auth_time/max_age); its signature is checked here with the same key code
// as the `jwt` authenticator (src/jose/), which also verifies back-channel logout tokens.
// Discovery failing at start does not stop the gateway: it is retried with backoff, the last good
// metadata and keys are kept, and only this provider's login answers 503 meanwhile.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { importPKCS8 } from 'jose';
import * as client from 'openid-client';
import type { GatewayContext } from '../context.js';
import { claimAt, cleanString, stringList, validGroup } from '../jose/claims.js';
import { verifyJwsSignature } from '../jose/jws.js';
import { isObject, RemoteKeySource, type Json } from '../jose/keys.js';
import { durationMs } from '../util/duration.js';
import { verifyLogoutTokenClaims } from './logout-token.js';
import { resolveOidcSettings, type OidcAuthenticatorConfig, type ResolvedOidcSettings } from './presets.js';
import { OidcLoginError, type AuthorizationOptions, type LoginFlow, type LoginProvider, type ProviderIdentity } from './types.js';

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;
/** Metadata is discovered again this often; the last good copy stays in use if that fails. */
const REFRESH_MS = 60 * 60_000;
/** Asymmetric algorithms only: never `none`, never HS* with a public key (RFC 8725 §3.1). */
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Client authentication at the token endpoint (SPEC: basic, post, or private_key_jwt). */
async function clientAuthFor(cfg: OidcAuthenticatorConfig): Promise<{ auth: client.ClientAuth; secret: string | undefined }> {
  const secret = typeof cfg.clientSecret === 'string' ? cfg.clientSecret : undefined;
  switch (cfg.clientAuth ?? 'client_secret_basic') {
    case 'client_secret_post':
      return { auth: client.ClientSecretPost(secret), secret };
    case 'private_key_jwt': {
      const { key, alg } = privateKeyOf(cfg);
      // openid-client signs with a WebCrypto key; jose imports the PEM as one.
      return { auth: client.PrivateKeyJwt(await importPKCS8(key.export({ type: 'pkcs8', format: 'pem' }).toString(), alg)), secret: undefined };
    }
    default:
      return { auth: client.ClientSecretBasic(secret), secret };
  }
}

function privateKeyOf(cfg: OidcAuthenticatorConfig): { key: KeyObject; alg: string } {
  if (typeof cfg.privateKey !== 'string') throw new Error('privateKey was not loaded');
  const key = createPrivateKey(cfg.privateKey);
  const alg = key.asymmetricKeyType === 'ec' ? 'ES256' : key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'RS256';
  return { key, alg };
}

export class OpenIdProvider implements LoginProvider {
  readonly kind = 'oidc' as const;
  readonly settings: ResolvedOidcSettings;
  readonly #cfg: OidcAuthenticatorConfig;
  readonly #ctx: GatewayContext;
  readonly #timeoutMs: number;
  #config: client.Configuration | undefined;
  #keys: RemoteKeySource | undefined;
  #algorithms: string[] = ['RS256'];
  #timer: NodeJS.Timeout | undefined;
  #retryMs = FIRST_RETRY_MS;
  #closed = false;
  #lastError: string | undefined;
  #discovering: Promise<void> | undefined;
  #lastAttempt = 0;

  constructor(
    readonly name: string,
    cfg: OidcAuthenticatorConfig,
    ctx: GatewayContext,
  ) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.settings = resolveOidcSettings(cfg);
    this.#timeoutMs = durationMs(cfg.timeout, '3s');
    // A bad private key stops the gateway at start, not at the first login.
    if (cfg.clientAuth === 'private_key_jwt') privateKeyOf(cfg);
    void this.#discover();
  }

  /** Known metadata, or one discovery attempt now (joined if under way; at most one a second). */
  async available(): Promise<boolean> {
    if (this.#config !== undefined) return true;
    if (this.#discovering !== undefined) await this.#discovering;
    else if (Date.now() - this.#lastAttempt >= FIRST_RETRY_MS) await this.#discover();
    return this.#config !== undefined;
  }

  async ready(): Promise<'ok' | 'degraded'> {
    if (this.#config === undefined) throw new Error(this.#lastError ?? 'provider metadata unavailable');
    return this.#lastError === undefined ? 'ok' : 'degraded';
  }

  /** Discovery with backoff while it fails; refreshed hourly once known. */
  #discover(): Promise<void> {
    if (this.#discovering !== undefined || this.#closed) return this.#discovering ?? Promise.resolve();
    this.#lastAttempt = Date.now();
    this.#discovering = this.#load()
      .then(() => {
        if (this.#lastError !== undefined) this.#ctx.log.info({ provider: this.name }, 'OIDC provider available again');
        this.#lastError = undefined;
        this.#retryMs = FIRST_RETRY_MS;
        this.#schedule(REFRESH_MS);
      })
      .catch((err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        if (this.#lastError === undefined) this.#ctx.log.warn({ provider: this.name, err: message }, 'OIDC discovery failed; retrying with backoff (other sign-in methods keep working)');
        this.#lastError = message;
        this.#schedule(this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
      })
      .finally(() => {
        this.#discovering = undefined;
      });
    return this.#discovering;
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#discover(), ms);
    this.#timer.unref();
  }

  async #load(): Promise<void> {
    const { auth, secret } = await clientAuthFor(this.#cfg);
    const issuer = new URL(this.settings.issuer);
    const config = await client.discovery(issuer, this.#cfg.clientId, secret, auth, {
      execute: issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
      timeout: Math.ceil(this.#timeoutMs / 1000),
    });
    config.timeout = Math.ceil(this.#timeoutMs / 1000);
    const meta = config.serverMetadata();
    if (meta.jwks_uri === undefined) throw new Error('the provider metadata has no jwks_uri');
    const announced = meta.id_token_signing_alg_values_supported ?? ['RS256'];
    const algorithms = announced.filter((a) => ASYMMETRIC.includes(a));
    if (algorithms.length === 0) throw new Error('the provider announces no acceptable ID token algorithm');
    if (this.#keys === undefined || this.#algorithms.join() !== algorithms.join()) {
      const old = this.#keys;
      this.#keys = new RemoteKeySource({ issuer: meta.issuer, jwksUri: meta.jwks_uri, algorithms, refreshIntervalMs: durationMs(this.#cfg.jwksRefreshInterval, '30s'), timeoutMs: this.#timeoutMs, log: this.#ctx.log });
      await old?.close();
    }
    this.#algorithms = algorithms;
    this.#config = config;
  }

  #configuration(): client.Configuration {
    if (this.#config === undefined) {
      void this.#discover();
      throw new OidcLoginError('service_unavailable', `Sign-in with ${this.#cfg.label ?? this.name} is unavailable right now. Please try again in a moment or use another sign-in method.`, 'provider_unavailable');
    }
    return this.#config;
  }

  async authorizationUrl(flow: LoginFlow, redirectUri: string, opts: AuthorizationOptions): Promise<URL> {
    const config = this.#configuration();
    const params: Record<string, string> = {
      redirect_uri: redirectUri,
      scope: this.settings.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(flow.codeVerifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    };
    if (opts.reauthenticate) {
      params.prompt = 'login';
      params.max_age = '0';
    }
    return client.buildAuthorizationUrl(config, params);
  }

  async finishLogin(callbackUrl: URL, flow: LoginFlow): Promise<ProviderIdentity> {
    const config = this.#configuration();
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: flow.codeVerifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw this.#loginError(err);
    }
    const idToken = tokens.id_token;
    const claims = tokens.claims();
    if (idToken === undefined || claims === undefined) throw new OidcLoginError('forbidden', 'The identity provider sent no identity.', 'no_id_token');
    // The signature, against the provider's announced keys and algorithms (src/jose/).
    const signed = await verifyJwsSignature(idToken, this.#keys as RemoteKeySource, this.#algorithms);
    if (!signed.ok) {
      if (signed.unavailable) throw new OidcLoginError('service_unavailable', 'The identity provider cannot be reached right now. Please try again in a moment.', 'keys_unavailable');
      throw new OidcLoginError('forbidden', 'The identity provider sent an identity that could not be verified.', `id_token: ${signed.detail}`);
    }
    const payload = claims as unknown as Json;
    this.#checkTenant(payload);
    if (this.settings.detectGroupsOverage && (isObject(payload._claim_names) && 'groups' in payload._claim_names || payload.hasgroups === true)) {
      throw new OidcLoginError('forbidden', 'Your account belongs to too many groups for the identity provider to list them. Ask your administrator to filter the groups claim (e.g. groups assigned to the application).', 'groups_overage');
    }
    let merged = payload;
    if (payload.email === undefined && tokens.access_token !== undefined && config.serverMetadata().userinfo_endpoint !== undefined) {
      try {
        const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
        // The ID token's claims win; userinfo only fills in what it lacks.
        merged = { ...(info as unknown as Json), ...payload };
      } catch (err) {
        this.#ctx.log.debug({ provider: this.name, err: err instanceof Error ? err.message : String(err) }, 'userinfo not available');
      }
    }
    return this.#identity(merged, idToken);
  }

  /** Entra: the token's tenant must be on the allow-list and its issuer the template for that tenant. */
  #checkTenant(payload: Json): void {
    const allowed = this.settings.allowedTenants;
    if (allowed === undefined && !this.settings.multiTenant) return;
    const tid = str(payload.tid);
    if (tid === undefined || (allowed !== undefined && !allowed.includes(tid))) {
      throw new OidcLoginError('forbidden', 'Your organization is not allowed to sign in here.', 'tenant_not_allowed');
    }
    if (this.settings.multiTenant) {
      const template = this.#config?.serverMetadata().issuer ?? '';
      if (!template.includes('{tenantid}') || payload.iss !== template.replace('{tenantid}', tid)) {
        throw new OidcLoginError('forbidden', 'The identity provider sent an identity that could not be verified.', 'issuer_tenant_mismatch');
      }
    }
  }

  #identity(payload: Json, idToken: string): ProviderIdentity {
    const mapping = this.settings.claims;
    const sub = str(payload.sub) as string;
    const email = cleanString(claimAt(payload, mapping.email ?? 'email'), 320);
    // An unverified address never names the user (it would merge accounts by email): sub instead.
    const verified = payload.email_verified === true;
    const fromEmail = mapping.username === 'email' || (mapping.username === undefined && payload.preferred_username === undefined);
    const rawUser = fromEmail ? (verified ? payload.email : payload.sub) : mapping.username !== undefined ? claimAt(payload, mapping.username) : payload.preferred_username;
    const user = cleanString(rawUser, 256);
    if (user === undefined) throw new OidcLoginError('forbidden', 'The identity provider did not say who you are.', 'no_username');
    const authTime = typeof payload.auth_time === 'number' && Number.isFinite(payload.auth_time) ? Math.floor(payload.auth_time) : Math.floor(Date.now() / 1000);
    return {
      iss: String(payload.iss),
      sub,
      sid: str(payload.sid),
      user,
      email,
      // Only the boolean true counts: "true" strings and absent claims are unverified.
      emailVerified: verified,
      groups: stringList(claimAt(payload, mapping.groups ?? 'groups'), validGroup, false),
      amr: stringList(payload.amr, (a) => a.length <= 32 && !/[\u0000-\u001f\u007f]/.test(a), false),
      acr: str(payload.acr),
      authTime,
      hostedDomain: str(payload.hd),
      idToken,
    };
  }

  #loginError(err: unknown): OidcLoginError {
    if (err instanceof client.AuthorizationResponseError) {
      if (err.error === 'access_denied') return new OidcLoginError('forbidden', 'Sign-in was cancelled or refused at the identity provider.', 'access_denied');
      if (err.error === 'login_required' || err.error === 'interaction_required') return new OidcLoginError('unauthenticated', 'The identity provider asked you to sign in again. Please try again.', err.error);
      return new OidcLoginError('bad_request', 'The identity provider reported an error. Please try again.', `authorization_error: ${err.error.slice(0, 64)}`);
    }
    if (err instanceof client.ResponseBodyError) {
      // invalid_grant: a replayed, expired or foreign code (RFC 6749 §5.2).
      return new OidcLoginError('bad_request', 'This sign-in link was already used or has expired. Please sign in again.', `token_error: ${err.error.slice(0, 64)}`);
    }
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: unknown }).cause;
    if (typeof code === 'string' && /TIMEOUT|ECONNREFUSED|fetch failed/i.test(`${code} ${String((cause as { code?: string } | undefined)?.code ?? '')}`) || (err instanceof TypeError && err.message === 'fetch failed') || (err instanceof DOMException && err.name === 'TimeoutError')) {
      return new OidcLoginError('service_unavailable', 'The identity provider cannot be reached right now. Please try again in a moment.', 'provider_unreachable');
    }
    const message = err instanceof Error ? err.message : String(err);
    return new OidcLoginError('bad_request', 'The sign-in response could not be verified. Please sign in again.', `callback_invalid: ${message.slice(0, 160)}`);
  }

  endSessionUrl(idToken: string | undefined, postLogoutRedirectUri: string): URL | undefined {
    if (this.#cfg.rpInitiatedLogout !== true || this.#config?.serverMetadata().end_session_endpoint === undefined) return undefined;
    const params: Record<string, string> = { post_logout_redirect_uri: postLogoutRedirectUri, client_id: this.#cfg.clientId };
    if (idToken !== undefined) params.id_token_hint = idToken;
    return client.buildEndSessionUrl(this.#config, params);
  }

  async verifyLogoutToken(token: string): Promise<{ iss: string; sid?: string | undefined; sub?: string | undefined; jti: string; exp: number }> {
    const config = this.#configuration();
    const signed = await verifyJwsSignature(token, this.#keys as RemoteKeySource, this.#algorithms);
    if (!signed.ok) {
      if (signed.unavailable) throw new OidcLoginError('service_unavailable', 'The provider keys are unavailable.', 'keys_unavailable');
      throw new OidcLoginError('bad_request', 'The logout token is not valid.', `logout_token: ${signed.detail}`);
    }
    const issuer = config.serverMetadata().issuer;
    const expectedIssuer = this.settings.multiTenant && typeof signed.payload.tid === 'string' ? issuer.replace('{tenantid}', signed.payload.tid) : issuer;
    return verifyLogoutTokenClaims(signed.header, signed.payload, { issuer: expectedIssuer, audience: this.#cfg.clientId });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#keys?.close();
  }
}
