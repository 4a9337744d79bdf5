// `token`: the gateway's opaque API tokens (DRF TokenAuthentication). Mine: `Authorization:
// Token <key>`, or `Bearer <key>` when the key carries the configured prefix (SPEC 4); any other
// Bearer value is left to the jwt/introspection authenticators of the chain. With
// `source: django` (SPEC 3.2) a DRF key (40 hex) is looked up in authtoken_token instead.
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import type { GatewayContext } from '../../context.js';
import { StoreUnavailableError } from '../../errors.js';
import { acquireApiTokens, type ApiTokenService, type TokenVerification } from '../../tokens/api-tokens.js';
import { DrfTokens, isDrfKey } from '../../tokens/drf-tokens.js';
import { requireDjangoDatabase } from './django-session.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest } from '../types.js';

/** Longer Authorization values are no token of ours; refused without hashing. */
const MAX_KEY_LENGTH = 256;

/** `Token <key>` (DRF) or `Bearer <key>`, scheme case-insensitive (RFC 9110 11.1); undefined otherwise. */
export function parseTokenAuthorization(header: string | undefined, service: Pick<ApiTokenService, 'hasPrefix'>): string | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const key = header.slice(space + 1).trim();
  if (scheme === 'token') return key;
  if (scheme === 'bearer' && service.hasPrefix(key)) return key;
  return undefined;
}

export function createTokenAuthenticator(name: string, cfg: AuthenticatorConfigOf<'token'>, ctx: GatewayContext): Authenticator {
  const drf = cfg.source === 'django' ? new DrfTokens(requireDjangoDatabase(ctx, name), ctx) : undefined;
  const { service, release } = acquireApiTokens(ctx);
  const unsubscribe = drf ? ctx.users.onChange(() => drf.clear()) : undefined;

  async function authenticateDrf(key: string, tokens: DrfTokens): Promise<AuthOutcome> {
    let verdict;
    try {
      verdict = await tokens.verify(key);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return rejected('store_unavailable');
      throw err;
    }
    if (!verdict.ok) return rejected(verdict.code);
    const { user, row } = verdict;
    return authenticated({
      user: user.username,
      email: user.email,
      groups: user.groups,
      scopes: [],
      method: 'token',
      authenticator: name,
      mfa: false,
      amr: ['token'],
      authTime: row.created,
      subject: user.username,
      tokenId: verdict.handle,
    });
  }

  /** Synchronous when the token and its user are in memory (warm); otherwise asks the store. */
  function authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    const key = parseTokenAuthorization(request.headers.authorization, service);
    if (key === undefined) return NOT_MINE;
    if (drf && isDrfKey(key) && !service.isWellFormed(key)) return authenticateDrf(key, drf);
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !service.isWellFormed(key)) return rejected('invalid_token');
    const now = service.verifyNow(key, ctx.users);
    return now !== undefined ? outcomeOf(now) : authenticateFromStore(key);
  }

  async function authenticateFromStore(key: string): Promise<AuthOutcome> {
    let verdict;
    try {
      verdict = await service.verify(key, ctx.users);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return rejected('store_unavailable');
      throw err;
    }
    return outcomeOf(verdict);
  }

  function outcomeOf(verdict: TokenVerification): AuthOutcome {
    if (!verdict.ok) return rejected(verdict.code);
    const { record, user } = verdict;
    return authenticated({
      user: user.username,
      email: user.email,
      groups: user.groups,
      scopes: record.scopes,
      method: 'token',
      authenticator: name,
      mfa: false,
      amr: ['token'],
      authTime: record.authTime ?? 0, // the sign-in behind the token, not its creation (issue 9.9)
      subject: user.username,
      tokenId: record.id,
      expiresAt: record.expiresAt,
    });
  }

  return {
    name,
    type: 'token',
    authenticate,
    challenge: () => 'Token',
    close: () => {
      unsubscribe?.();
      return release();
    },
  };
}
