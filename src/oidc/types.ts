// What every provider kind (`oidc`, `github`) offers the OIDC endpoints (SPEC 6 /oidc/:name/*).
import type { ErrorCode } from '../errors.js';

/** One sign-in in progress, kept per `state` in the store (src/oidc/flow.ts). */
export interface LoginFlow {
  readonly provider: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** Validated redirect target after sign-in. */
  readonly rd: string;
  /** SHA-256 of the browser's flow cookie: the callback must come from the browser that started. */
  readonly binding: string;
  readonly createdAt: number;
}

/** The person the provider vouched for, before the gateway's own rules are applied. */
export interface ProviderIdentity {
  /** Issuer (for `github`: `github:<baseUrl>`); with `sub` the stable key of the identity. */
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string | undefined;
  readonly user: string;
  readonly email?: string | undefined;
  /** Only a verified address takes part in domain rules and linking. */
  readonly emailVerified: boolean;
  readonly groups: readonly string[];
  readonly amr: readonly string[];
  readonly acr?: string | undefined;
  /** Epoch seconds. */
  readonly authTime: number;
  /** Google's hosted domain (`hd`): what allowedDomains checks for the google preset. */
  readonly hostedDomain?: string | undefined;
  readonly idToken?: string | undefined;
}

export interface AuthorizationOptions {
  /** Step-up: ask the provider to authenticate the user again. */
  readonly reauthenticate?: boolean;
}

/** A sign-in that cannot complete: shown to the browser as a page (never with a secret in it). */
export class OidcLoginError extends Error {
  constructor(
    readonly code: ErrorCode,
    /** What the person is told. */
    readonly userMessage: string,
    /** Why, for the log and audit line (no secret). */
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'OidcLoginError';
  }
}

export interface LoginProvider {
  readonly name: string;
  readonly kind: 'oidc' | 'github';
  /** 'ok', or throws while the provider's metadata is unknown (readiness `oidc:<name>`). */
  ready(): Promise<'ok' | 'degraded'>;
  /** Whether a login can start now (metadata known, or found by trying once more). */
  available(): Promise<boolean>;
  authorizationUrl(flow: LoginFlow, redirectUri: string, opts: AuthorizationOptions): Promise<URL>;
  /** Exchanges the code of a callback; throws OidcLoginError. */
  finishLogin(callbackUrl: URL, flow: LoginFlow, redirectUri: string): Promise<ProviderIdentity>;
  /** RP-initiated logout target, when the provider has one and it is enabled. */
  endSessionUrl(idToken: string | undefined, postLogoutRedirectUri: string): URL | undefined;
  /** Verifies a back-channel logout token (throws OidcLoginError); undefined for providers without one. */
  verifyLogoutToken?(token: string): Promise<{ iss: string; sid?: string | undefined; sub?: string | undefined; jti: string; exp: number }>;
  close(): Promise<void>;
}
