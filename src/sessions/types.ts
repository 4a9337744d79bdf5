// The browser session as the store keeps it (SPEC 4 step 4 `session`, SPEC 6 /login, /logout).
// One record per sign-in; a login, an MFA completion or an OIDC callback always makes a new one.

export interface PendingMfa {
  /** Second-factor methods the user may complete, e.g. ['totp', 'recovery']. */
  readonly methods: readonly string[];
}

export interface OidcSessionInfo {
  /** Config name of the `oidc` authenticator. */
  readonly provider: string;
  /** The provider's session id (`sid`), for back-channel logout. */
  readonly sid?: string | undefined;
  readonly sub: string;
  /** The provider's issuer: back-channel logout finds sessions by (iss, sid) and (iss, sub). */
  readonly iss?: string | undefined;
  /** Signed in as a local user through `linkUsers`: the session ends when that user is disabled or removed. */
  readonly linked?: boolean | undefined;
  /** The provider's authentication context class (`acr`), as reported at sign-in. */
  readonly acr?: string | undefined;
  /** The ID token, kept server-side only for RP-initiated logout's `id_token_hint`. */
  readonly idToken?: string | undefined;
}

export interface SessionRecord {
  /**
   * Public handle of the session: SHA-256 of the secret id carried in the cookie. It keys the
   * store and appears in logs and `Identity.sessionId`; the cookie's id itself is never stored.
   */
  readonly id: string;
  readonly user: string;
  readonly email?: string | undefined;
  /** Groups at sign-in. Password sessions report the user directory's current groups instead. */
  readonly groups: readonly string[];
  /** 'session' (password login) or 'oidc:<name>'. */
  readonly method: string;
  readonly amr: readonly string[];
  readonly mfa: boolean;
  /** When the user signed in or last re-entered a factor (epoch seconds, as `Identity.authTime`). */
  readonly authTime: number;
  /** Epoch ms. The absolute timeout counts from here. */
  readonly createdAt: number;
  /** Epoch ms of the last request seen (written to the store at most every few seconds). */
  readonly lastSeenAt: number;
  /** Present until the second factor is done: such a session is never an identity. */
  readonly pendingMfa?: PendingMfa | undefined;
  readonly oidc?: OidcSessionInfo | undefined;
  /**
   * Keyed fingerprint of the password hash at sign-in (password sessions): a changed password
   * ends every session made with the old one.
   */
  readonly credential?: string | undefined;
  /** Client address at sign-in (shown on the account page and by GET /sessions). */
  readonly ip?: string | undefined;
  /** The browser's User-Agent at sign-in, truncated (account page: the device). */
  readonly userAgent?: string | undefined;
}

/** What a caller supplies to start a session; the service fills in id and timestamps. */
export interface NewSession {
  readonly user: string;
  readonly email?: string | undefined;
  readonly groups: readonly string[];
  readonly method: string;
  readonly amr: readonly string[];
  readonly mfa: boolean;
  /** Defaults to now. */
  readonly authTime?: number | undefined;
  readonly pendingMfa?: PendingMfa | undefined;
  readonly oidc?: OidcSessionInfo | undefined;
  /** The user's password hash at sign-in (only its keyed fingerprint is stored). */
  readonly passwordHash?: string | undefined;
  /** Client address and User-Agent of the sign-in request (GET /sessions, the account page). */
  readonly ip?: string | undefined;
  readonly userAgent?: string | undefined;
}

/** What a session cookie resolves to. */
export type SessionLookup =
  /** No live, correctly signed session. `clear`: a cookie was presented and should be removed. */
  | { readonly kind: 'absent'; readonly clear: boolean }
  /** A live session that still waits for its second factor: not an identity. */
  | { readonly kind: 'pending'; readonly session: SessionRecord }
  /** A live session; `session` carries the user's current email and groups. */
  | { readonly kind: 'active'; readonly session: SessionRecord };
