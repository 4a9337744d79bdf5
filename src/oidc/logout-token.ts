// OIDC Back-Channel Logout 1.0 §2.6: the claims of a logout token whose signature was already
// verified (src/jose/jws.ts `verifyJwsSignature`). One check per sentence of the spec.
import { OidcLoginError } from './types.js';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Tokens older than this are refused even if their exp is later (a replay window we can bound). */
const MAX_AGE_S = 10 * 60;
const CLOCK_TOLERANCE_S = 30;

const bad = (reason: string): OidcLoginError => new OidcLoginError('bad_request', 'The logout token is not valid.', `logout_token: ${reason}`);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' && v.length <= 1024 ? v : undefined);

export interface LogoutTokenClaims {
  iss: string;
  sid?: string | undefined;
  sub?: string | undefined;
  jti: string;
  /** Epoch seconds until which the jti must be remembered. */
  exp: number;
}

export function verifyLogoutTokenClaims(header: Record<string, unknown>, payload: Record<string, unknown>, expected: { issuer: string; audience: string }, now = Math.floor(Date.now() / 1000)): LogoutTokenClaims {
  // §2.4 recommends typ logout+jwt; when present, anything else is another kind of token.
  if (header.typ !== undefined && (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== 'logout+jwt')) throw bad('typ');
  if (payload.iss !== expected.issuer) throw bad('iss');
  const aud = payload.aud;
  if (!(aud === expected.audience || (Array.isArray(aud) && aud.includes(expected.audience)))) throw bad('aud');
  const iat = payload.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat > now + CLOCK_TOLERANCE_S || iat < now - MAX_AGE_S) throw bad('iat');
  const exp = payload.exp;
  if (exp !== undefined && (typeof exp !== 'number' || exp < now - CLOCK_TOLERANCE_S)) throw bad('exp');
  const jti = str(payload.jti);
  if (jti === undefined) throw bad('jti');
  const events = payload.events;
  if (typeof events !== 'object' || events === null || Array.isArray(events)) throw bad('events');
  const member = (events as Record<string, unknown>)[EVENT];
  if (typeof member !== 'object' || member === null || Array.isArray(member)) throw bad('events');
  // §2.4: a nonce is prohibited, so an ID token can never pass as a logout token.
  if (payload.nonce !== undefined) throw bad('nonce');
  const sid = str(payload.sid);
  const sub = str(payload.sub);
  if (sid === undefined && sub === undefined) throw bad('sid/sub');
  return { iss: expected.issuer, sid, sub, jti, exp: Math.max(typeof exp === 'number' ? exp : 0, iat + MAX_AGE_S) };
}
