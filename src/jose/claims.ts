// Verified claims -> identity fields: the dotted-path mapping (SPEC 3 `claims`) shared by the
// `jwt` authenticator and OIDC logins, with the value checks that keep header lines safe (THREATS 91).
import type { Identity } from '../pipeline/types.js';
import { isNumericDate } from './jws.js';
import { isObject, type Json } from './keys.js';

const CONTROL = /[\u0000-\u001f\u007f]/;
// RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E
const SCOPE_TOKEN = /^[\u0021\u0023-\u005b\u005d-\u007e]+$/;
/** amr values (RFC 8176, plus the gateway's own) that mean a second factor was completed. */
export const MFA_AMR = new Set(['mfa', 'otp', 'hwk', 'sms', 'tel', 'fpt', 'face', 'iris', 'retina', 'vbm', 'email', 'recovery']);

/** A dotted path into the payload, own properties only (no prototype lookups). */
export function claimAt(payload: Json, path: string): unknown {
  let node: unknown = payload;
  for (const part of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

export const cleanString = (v: unknown, max: number): string | undefined =>
  typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL.test(v) ? v : undefined;

export function stringList(v: unknown, valid: (s: string) => boolean, splitString: boolean): string[] {
  const items = typeof v === 'string' ? (splitString ? v.split(' ') : [v]) : Array.isArray(v) ? v : [];
  const out: string[] = [];
  for (const item of items) if (typeof item === 'string' && item !== '' && valid(item) && !out.includes(item)) out.push(item);
  return out;
}

export const validGroup = (g: string): boolean => g.length <= 256 && !CONTROL.test(g) && !g.includes(',');
const validScope = (s: string): boolean => s.length <= 256 && SCOPE_TOKEN.test(s);

export interface ClaimsMapping {
  username?: string | undefined;
  email?: string | undefined;
  groups?: string | undefined;
  scopes?: string | undefined;
}

/** Identity from verified claims; undefined when no acceptable username can be found (THREATS 91). */
export function identityFromClaims(payload: Json, mapping: ClaimsMapping | undefined, name: string, external: boolean): Identity | undefined {
  const rawUser = mapping?.username !== undefined ? claimAt(payload, mapping.username) : (payload.preferred_username ?? payload.sub);
  const user = cleanString(rawUser, 256);
  if (user === undefined) return undefined;
  const email = cleanString(claimAt(payload, mapping?.email ?? 'email'), 320);
  const groups = stringList(claimAt(payload, mapping?.groups ?? 'groups'), validGroup, false);
  const scopes =
    mapping?.scopes !== undefined
      ? stringList(claimAt(payload, mapping.scopes), validScope, true)
      : payload.scope !== undefined
        ? stringList(payload.scope, validScope, true)
        : stringList(payload.scp, validScope, true);
  const amrClaim = stringList(payload.amr, (a) => a.length <= 32 && !CONTROL.test(a), false);
  const amr = amrClaim.length > 0 ? amrClaim : ['jwt'];
  const authTime = isNumericDate(payload.auth_time) ? Math.floor(payload.auth_time as number) : isNumericDate(payload.iat) ? Math.floor(payload.iat as number) : 0;
  const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
  return {
    user,
    email,
    groups,
    scopes,
    method: 'jwt',
    authenticator: name,
    mfa: amr.some((a) => MFA_AMR.has(a)),
    amr,
    authTime,
    subject: external && sub !== undefined ? `${String(payload.iss)}#${sub}` : (sub ?? user),
    tokenId: typeof payload.jti === 'string' ? payload.jti : undefined,
    expiresAt: payload.exp as number,
  };
}

