// Refresh-token families (SPEC 6 /jwt/refresh, THREATS 50-53): every refresh token is spent on
// use (rotation); presenting a spent one revokes its whole family, except inside the short grace
// window where concurrent refreshes of one token all get the one child pair that was minted.
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayContext, UserRecord } from '../context.js';
import { GatewayError } from '../errors.js';
import { audit, type AuditOrigin } from '../ops/audit.js';
import { FamilyUserCheck, selfKeySource } from '../pipeline/authenticators/jwt.js';
import { classifyBearer, JwsVerifier } from '../jose/jws.js';
import { acquireDenylist, type Denylist } from './denylist.js';
import {
  ACCESS_TYP,
  familyKey,
  issueAccessToken,
  issueRefreshToken,
  jwtSettings,
  newTokenId,
  nowSeconds,
  parseFamilyState,
  REFRESH_TYP,
  selfIssuer,
  userFamiliesIndex,
  type FamilyState,
  type JwtSettings,
} from './jwt-issuer.js';

export interface TokenPair {
  access: string;
  refresh: string;
}

/** A verified gateway token. */
export interface OwnToken {
  kind: 'access' | 'refresh';
  payload: Record<string, unknown>;
  jti: string;
  fam: string | undefined;
}

const CLOCK_TOLERANCE_MS = 30_000;
/** Slack added to store TTLs so a record never expires before the tokens it governs. */
const TTL_SLACK_MS = 60_000;
/** How long a concurrent refresh waits for the winner's pair to appear. */
const GRACE_WAIT_MS = 2_000;
const GRACE_POLL_MS = 10;
const ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

const spentKey = (jti: string): string => `jwt:spent:${jti}`;
const graceKey = (jti: string): string => `jwt:grace:${jti}`;

function parsePair(text: string | null): TokenPair | undefined {
  if (text === null) return undefined;
  try {
    const v = JSON.parse(text) as Partial<TokenPair>;
    return typeof v.access === 'string' && typeof v.refresh === 'string' ? { access: v.access, refresh: v.refresh } : undefined;
  } catch {
    return undefined;
  }
}

export type JwtServiceContext = Pick<GatewayContext, 'config' | 'signing' | 'publicUrl' | 'prefix' | 'store' | 'users' | 'log' | 'audit'>;

/** Issues, refreshes, verifies and revokes the gateway's own JWTs. One per loaded config. */
export class JwtService {
  readonly settings: JwtSettings;
  readonly #ctx: JwtServiceContext;
  readonly #issuer: string;
  readonly #verifier: JwsVerifier;
  readonly #denylist: Denylist;
  readonly #userCheck: FamilyUserCheck;

  constructor(ctx: JwtServiceContext) {
    this.#ctx = ctx;
    this.settings = jwtSettings(ctx.config.jwt);
    this.#issuer = selfIssuer(ctx);
    const { source, algorithms } = selfKeySource(ctx);
    this.#verifier = new JwsVerifier(
      { issuer: this.#issuer, algorithms, clockToleranceMs: CLOCK_TOLERANCE_MS, types: [ACCESS_TYP, REFRESH_TYP], tokenUses: ['access', 'refresh'], requireTokenUse: true },
      source,
    );
    this.#denylist = acquireDenylist(ctx.store, ctx.log);
    this.#userCheck = new FamilyUserCheck(ctx);
  }

  get denylist(): Denylist {
    return this.#denylist;
  }

  /** A new family for a sign-in: the first access + refresh pair (POST /jwt/token). */
  async issueForLogin(user: UserRecord, signIn: { amr: readonly string[]; authTime: number; scopes?: readonly string[] }): Promise<TokenPair> {
    const fam = newTokenId();
    const state: FamilyState = { user: user.username, ver: user.version, amr: [...signIn.amr], authTime: signIn.authTime, ...(signIn.scopes ? { scopes: [...signIn.scopes] } : {}) };
    const pair = this.#mint(user, state, fam);
    await this.#saveFamily(fam, state);
    return pair;
  }

  /** POST /jwt/refresh: rotation with reuse detection. Throws GatewayError. */
  async refresh(token: unknown): Promise<TokenPair> {
    const own = await this.verifyOwn(token);
    if (own.kind !== 'refresh') throw new GatewayError('bad_request', 'Not a refresh token.');
    const { jti, fam, payload } = own;
    if (fam === undefined) throw new GatewayError('invalid_token');
    if (this.#denylist.isRevoked(jti, fam)) throw new GatewayError('token_revoked');
    const state = parseFamilyState(await this.#ctx.store.get(familyKey(fam)));
    if (state === undefined || state.user !== payload.sub) throw new GatewayError('token_revoked');

    const user = await this.#ctx.users.get(state.user);
    if (user === undefined || user.disabled || user.version !== state.ver) {
      this.#ctx.log.info({ fam }, 'refresh refused: the user changed or was disabled; family revoked');
      await this.revokeFamily(fam, state.user, { reason: 'user_changed' });
      throw new GatewayError('token_revoked');
    }

    if (!this.settings.rotateRefresh) {
      return { access: issueAccessToken(this.#ctx, this.settings, { user, amr: state.amr, authTime: state.authTime, scopes: state.scopes, fam }).token, refresh: token as string };
    }

    // Mint first, then claim the parent atomically: the winner's pair is stored before anyone can
    // find the parent spent, and only the winner's pair ever leaves the process.
    const candidate = this.#mint(user, state, fam);
    const parentTtlMs = Math.max((payload.exp as number) * 1000 - Date.now(), 0) + CLOCK_TOLERANCE_MS + TTL_SLACK_MS;
    const store = this.#ctx.store;
    if (await store.setIfAbsent(spentKey(jti), String(Date.now()), parentTtlMs)) {
      if (this.settings.reuseGraceMs > 0) await store.set(graceKey(jti), JSON.stringify(candidate), this.settings.reuseGraceMs);
      await this.#saveFamily(fam, state);
      return candidate;
    }

    const spentAt = Number(await store.get(spentKey(jti)));
    if (this.settings.reuseGraceMs > 0 && Number.isFinite(spentAt) && spentAt > 0 && Date.now() - spentAt <= this.settings.reuseGraceMs) {
      const pair = await this.#awaitGracePair(jti);
      if (pair !== undefined) return pair;
    }
    // A spent token again, outside the grace window: someone else holds a copy (RFC 9700 §4.14.2).
    this.#ctx.log.warn({ fam, event: 'refresh_reuse' }, 'refresh token reuse detected; the whole family is revoked');
    await this.revokeFamily(fam, state.user, { reason: 'refresh_reuse' });
    throw new GatewayError('token_revoked');
  }

  /** POST /jwt/verify: 200 for a live gateway token, else a GatewayError. */
  async verify(token: unknown): Promise<OwnToken> {
    const own = await this.verifyOwn(token);
    if (this.#denylist.isRevoked(own.jti, own.fam)) throw new GatewayError('token_revoked');
    if (own.kind === 'access') {
      if (own.fam !== undefined) {
        const problem = await this.#userCheck.check(own.payload.sub, own.fam);
        if (problem !== undefined) throw new GatewayError(problem.code, problem.detail);
      }
      return own;
    }
    if (own.fam === undefined) throw new GatewayError('invalid_token');
    const store = this.#ctx.store;
    const state = parseFamilyState(await store.get(familyKey(own.fam)));
    if (state === undefined) throw new GatewayError('token_revoked');
    if (this.settings.rotateRefresh && (await store.get(spentKey(own.jti))) !== null) throw new GatewayError('token_revoked', 'The refresh token has been used.');
    const user = await this.#ctx.users.get(state.user);
    if (user === undefined || user.disabled || user.version !== state.ver) throw new GatewayError('token_revoked');
    return own;
  }

  /** POST /jwt/revoke: ends the refresh token's family and every access token of it. */
  async revoke(token: unknown, origin: AuditOrigin = {}): Promise<void> {
    const own = await this.verifyOwn(token);
    if (own.kind !== 'refresh') throw new GatewayError('bad_request', 'Not a refresh token.');
    if (own.fam === undefined) throw new GatewayError('invalid_token');
    await this.revokeFamily(own.fam, typeof own.payload.sub === 'string' ? own.payload.sub : undefined, { reason: 'user_request', ...origin });
  }

  /**
   * Revokes a family on every instance: its refresh tokens and the access tokens carrying its id.
   * One `jwt.family_revoked` audit event (SPEC 7) with the family id, never a token.
   */
  async revokeFamily(fam: string, username?: string, origin: AuditOrigin = {}): Promise<void> {
    const s = this.settings;
    const lastPossibleExp = nowSeconds() + Math.max(s.accessTtlSeconds, s.refreshTtlSeconds) + Math.ceil((CLOCK_TOLERANCE_MS + TTL_SLACK_MS) / 1000);
    await this.#denylist.revoke('fam', fam, lastPossibleExp);
    await this.#ctx.store.delete(familyKey(fam));
    if (username !== undefined) await this.#ctx.store.indexRemove(userFamiliesIndex(username), fam);
    audit(this.#ctx, 'jwt.family_revoked', { user: username, id: fam, ...origin });
  }

  /** Revokes every family of a user (logout everywhere, THREATS 32). Returns how many. */
  async revokeUser(username: string, origin: AuditOrigin = {}): Promise<number> {
    const fams = await this.#ctx.store.indexMembers(userFamiliesIndex(username));
    for (const fam of fams) if (ID_RE.test(fam)) await this.revokeFamily(fam, username, origin);
    return fams.length;
  }

  /** Verifies a gateway-issued access or refresh token (signature, iss, exp, typ). */
  async verifyOwn(token: unknown): Promise<OwnToken> {
    if (typeof token !== 'string' || token === '') throw new GatewayError('bad_request', 'A token is required.');
    const c = classifyBearer(token);
    if (c.kind !== 'jws' || c.jws.payload.iss !== this.#issuer) throw new GatewayError('invalid_token');
    const r = await this.#verifier.verify(c.jws);
    if (!r.ok) throw new GatewayError(r.code === 'token_expired' ? 'token_expired' : 'invalid_token', r.detail);
    const typ = typeof r.header.typ === 'string' ? r.header.typ.toLowerCase() : '';
    const use = r.payload.token_use;
    const kind = typ === ACCESS_TYP && use === 'access' ? 'access' : typ === REFRESH_TYP && use === 'refresh' ? 'refresh' : undefined;
    const jti = r.payload.jti;
    const fam = r.payload.fam;
    if (kind === undefined || typeof jti !== 'string' || !ID_RE.test(jti) || (fam !== undefined && (typeof fam !== 'string' || !ID_RE.test(fam)))) {
      throw new GatewayError('invalid_token');
    }
    return { kind, payload: r.payload, jti, fam: fam as string | undefined };
  }

  close(): void {
    this.#denylist.release();
  }

  #mint(user: UserRecord, state: FamilyState, fam: string): TokenPair {
    const access = issueAccessToken(this.#ctx, this.settings, { user, amr: state.amr, authTime: state.authTime, scopes: state.scopes, fam });
    const refresh = issueRefreshToken(this.#ctx, this.settings, { username: user.username, fam });
    return { access: access.token, refresh: refresh.token };
  }

  async #saveFamily(fam: string, state: FamilyState): Promise<void> {
    const s = this.settings;
    const ttl = Math.max(s.accessTtlSeconds, s.refreshTtlSeconds) * 1000 + CLOCK_TOLERANCE_MS + TTL_SLACK_MS;
    await this.#ctx.store.set(familyKey(fam), JSON.stringify(state), ttl);
    await this.#ctx.store.indexAdd(userFamiliesIndex(state.user), fam, ttl);
  }

  /** The winner stores its pair right after claiming the parent; wait briefly for it. */
  async #awaitGracePair(jti: string): Promise<TokenPair | undefined> {
    const deadline = Date.now() + GRACE_WAIT_MS;
    for (;;) {
      const pair = parsePair(await this.#ctx.store.get(graceKey(jti)));
      if (pair !== undefined || Date.now() >= deadline) return pair;
      await sleep(GRACE_POLL_MS);
    }
  }
}

/** Ends every JWT family of a user, e.g. at logout; safe to call when the user has none. */
export async function revokeUserJwtFamilies(ctx: JwtServiceContext, username: string, origin: AuditOrigin = {}): Promise<number> {
  const service = new JwtService(ctx);
  try {
    return await service.revokeUser(username, origin);
  } finally {
    service.close();
  }
}
