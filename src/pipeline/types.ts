// The one authenticator interface (SPEC 4 step 4) shared by built-ins and plugins.
// An authenticator answers NOT_MINE (no credential of its kind), an identity, or a rejection.
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { ErrorCode } from '../errors.js';

export interface Identity {
  /** Username (the value of X-Auth-User). */
  readonly user: string;
  readonly email?: string | undefined;
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  /** basic | session | django-session | token | jwt | apikey | introspection | oidc:<name> | plugin:<name> */
  readonly method: string;
  /** Config name of the authenticator instance that produced this identity. */
  readonly authenticator: string;
  /** True once a second factor was completed for this sign-in. */
  readonly mfa: boolean;
  /** The factors used (RFC 8176 `amr`), e.g. ['pwd'] or ['pwd', 'otp']. */
  readonly amr: readonly string[];
  /** When the caller signed in, or last re-entered a factor (epoch seconds). */
  readonly authTime: number;
  /** Stable subject (e.g. OIDC iss+sub, or the username). */
  readonly subject?: string | undefined;
  /** Session id or token id behind this identity, for revocation and logging (never a secret). */
  readonly sessionId?: string | undefined;
  readonly tokenId?: string | undefined;
  /** When the credential stops being valid (epoch seconds), if it has an end. */
  readonly expiresAt?: number | undefined;
}

export const NOT_MINE: { readonly kind: 'not-mine' } = Object.freeze({ kind: 'not-mine' as const });
export type NotMine = typeof NOT_MINE;

export interface Authenticated {
  readonly kind: 'identity';
  readonly identity: Identity;
}

export interface Rejected {
  readonly kind: 'reject';
  /** Problem code: invalid_credentials, invalid_token, token_expired, token_revoked, locked, store_unavailable, bad_request … */
  readonly code: ErrorCode;
  readonly detail?: string | undefined;
  /** Extra response headers, e.g. Retry-After for `locked`. */
  readonly headers?: Record<string, string> | undefined;
}

export type AuthOutcome = NotMine | Authenticated | Rejected;

export const authenticated = (identity: Identity): Authenticated => ({ kind: 'identity', identity });
export const rejected = (code: ErrorCode, detail?: string, headers?: Record<string, string>): Rejected => ({ kind: 'reject', code, detail, headers });

/**
 * What an authenticator sees of a request. For proxied requests it is built from the incoming
 * request; for forward-auth (`/verify`) method/path/host come from the trusted proxy's headers.
 */
export interface AuthRequest {
  readonly method: string;
  /** Normalized path that was matched (before stripPath). */
  readonly path: string;
  /** Raw query string without '?', or ''. */
  readonly query: string;
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
  /** Client address (after trusted-proxy resolution). */
  readonly ip: string;
  /** Parsed cookies (unsigned raw values). */
  readonly cookies: Readonly<Record<string, string | undefined>>;
  /** The raw body, present only when an authenticator of the route declared `needsBody`. */
  readonly body?: Buffer | undefined;
  readonly log: FastifyBaseLogger;
  /**
   * Optional: ask the gateway to clear a cookie on the response (Path=/), e.g. a session cookie
   * that no longer resolves to a live session (SPEC 4: "counts as absent (and is cleared)").
   * Set by whoever builds the AuthRequest; authenticators call it only if present.
   */
  readonly clearCookie?: ((name: string) => void) | undefined;
  /**
   * The address the request came from without believing any X-Forwarded-For: the TCP peer for
   * proxied requests; for forward-auth, the original client as the trusted proxy reports it.
   * For authenticators that trust a network position (plugins/trusted-header.js).
   */
  readonly peer?: string | undefined;
}

export interface Authenticator {
  readonly name: string;
  readonly type: string;
  /** Set when the authenticator must read the raw request body (e.g. HMAC signatures). */
  readonly needsBody?: boolean;
  authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome>;
  /** The WWW-Authenticate challenge for a 401, given the rejection that caused it (if any). */
  challenge?(rejection?: Rejected): string | undefined;
  /** Readiness check (e.g. JWKS reachable); throws or returns a short status word. */
  ready?(): Promise<'ok' | 'degraded'>;
  /** Release timers, sockets, subscriptions. */
  close?(): Promise<void> | void;
}
