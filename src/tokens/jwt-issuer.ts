// The gateway's own JWTs (SPEC 6 /jwt/*), simplejwt-compatible in shape: short-lived access
// tokens (RFC 9068 `at+jwt`) and refresh tokens (`refresh+jwt`) that belong to a family, so one
// revocation or a detected reuse ends every token of a sign-in.
import { randomBytes } from 'node:crypto';
import type { GatewayContext, UserRecord } from '../context.js';
import type { Store } from '../store/types.js';
import { durationMs } from '../util/duration.js';

export const ACCESS_TYP = 'at+jwt';
export const REFRESH_TYP = 'refresh+jwt';

/** The issuer of every gateway token: publicUrl + prefix (SPEC 6). */
export function selfIssuer(ctx: Pick<GatewayContext, 'publicUrl' | 'prefix'>): string {
  return `${ctx.publicUrl.origin}${ctx.prefix}`;
}

export interface JwtSettings {
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  rotateRefresh: boolean;
  reuseGraceMs: number;
}

export function jwtSettings(cfg: GatewayContext['config']['jwt']): JwtSettings {
  return {
    accessTtlSeconds: Math.max(1, Math.floor(durationMs(cfg?.accessTtl, '5m') / 1000)),
    refreshTtlSeconds: Math.max(1, Math.floor(durationMs(cfg?.refreshTtl, '1d') / 1000)),
    rotateRefresh: cfg?.rotateRefresh ?? true,
    reuseGraceMs: durationMs(cfg?.reuseGrace, '10s'),
  };
}

/** 128-bit random identifier (jti, family id), base64url. */
export const newTokenId = (): string => randomBytes(16).toString('base64url');

const SECOND_FACTORS: ReadonlySet<string> = new Set(['otp', 'recovery', 'email', 'hwk', 'mfa']);

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export interface AccessTokenInput {
  user: Pick<UserRecord, 'username' | 'email' | 'groups'>;
  /** Factors of the sign-in (RFC 8176), e.g. ['pwd'] or ['pwd', 'otp']. */
  amr: readonly string[];
  /** Epoch seconds of the sign-in. */
  authTime: number;
  scopes?: readonly string[] | undefined;
  audience?: string | readonly string[] | undefined;
  /** Refresh family the token belongs to. */
  fam?: string | undefined;
}

export interface IssuedToken {
  token: string;
  jti: string;
  /** Epoch seconds. */
  exp: number;
}

export function issueAccessToken(ctx: Pick<GatewayContext, 'signing' | 'publicUrl' | 'prefix'>, settings: JwtSettings, input: AccessTokenInput): IssuedToken {
  const iat = nowSeconds();
  const jti = newTokenId();
  const exp = iat + settings.accessTtlSeconds;
  const payload: Record<string, unknown> = {
    iss: selfIssuer(ctx),
    sub: input.user.username,
    ...(input.audience !== undefined ? { aud: typeof input.audience === 'string' ? input.audience : [...input.audience] } : {}),
    jti,
    iat,
    exp,
    token_use: 'access',
    amr: [...input.amr],
    // A second factor took part in the sign-in (RFC 8176 values the gateway's MFA adds).
    mfa: input.amr.some((a) => SECOND_FACTORS.has(a)),
    auth_time: input.authTime,
    ...(input.user.email !== undefined ? { email: input.user.email } : {}),
    groups: [...input.user.groups],
    ...(input.scopes !== undefined && input.scopes.length > 0 ? { scope: input.scopes.join(' ') } : {}),
    ...(input.fam !== undefined ? { fam: input.fam } : {}),
  };
  return { token: ctx.signing.sign(payload, { typ: ACCESS_TYP }), jti, exp };
}

export function issueRefreshToken(ctx: Pick<GatewayContext, 'signing' | 'publicUrl' | 'prefix'>, settings: JwtSettings, input: { username: string; fam: string }): IssuedToken {
  const iat = nowSeconds();
  const jti = newTokenId();
  const exp = iat + settings.refreshTtlSeconds;
  const payload = { iss: selfIssuer(ctx), sub: input.username, jti, iat, exp, token_use: 'refresh', fam: input.fam };
  return { token: ctx.signing.sign(payload, { typ: REFRESH_TYP }), jti, exp };
}

// ---------------------------------------------------------------------------------------------
// Refresh families in the store

/** What the store keeps per family; the user's record version stays here, never in a token. */
export interface FamilyState {
  user: string;
  /** UserRecord.version at sign-in: a changed password, group or disabled flag ends the family. */
  ver: string;
  amr: string[];
  authTime: number;
  scopes?: string[] | undefined;
}

export const familyKey = (fam: string): string => `jwt:fam:${fam}`;
export const userFamiliesIndex = (username: string): string => `jwt:user:${username}`;

export function parseFamilyState(text: string | null): FamilyState | undefined {
  if (text === null) return undefined;
  try {
    const v = JSON.parse(text) as Partial<FamilyState>;
    if (typeof v.user === 'string' && typeof v.ver === 'string' && Array.isArray(v.amr) && typeof v.authTime === 'number') return v as FamilyState;
  } catch {
    // corrupt entry: treated as absent
  }
  return undefined;
}

/** The user version a family was created with, or undefined when the family no longer exists. */
export async function readFamilyVersion(store: Store, fam: string): Promise<string | undefined> {
  return parseFamilyState(await store.get(familyKey(fam)))?.ver;
}
