// `introspection`: opaque Bearer tokens of an external authorization server, checked with
// OAuth 2.0 Token Introspection (RFC 7662). Mine: any Bearer value that is not one of the
// gateway's own tokens and not a JWS for an issuer a `jwt` authenticator handles, so a gateway
// token or JWT is never sent to a third party whatever the chain order is.
//
// Verdicts are cached in process, keyed by HMAC(cacheKey, authenticator, endpoint, token), for
// min(cacheTtl, exp - now); inactive answers briefly; errors never. Identical concurrent lookups
// share one call, and at most MAX_IN_FLIGHT calls run at once (more → 503), so a flood of
// random tokens cannot turn the gateway into a load generator against the AS.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { Agent, request as undiciRequest } from 'undici';
import type { AuthenticatorConfigOf, Secret } from '../../config/schema.js';
import type { GatewayContext } from '../../context.js';
import type { ErrorCode } from '../../errors.js';
import { isWellFormedToken } from '../../tokens/api-tokens.js';
import { selfIssuer } from '../../tokens/jwt-issuer.js';
import { durationMs } from '../../util/duration.js';
import { credentialCacheKey } from '../../util/secure.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Rejected } from '../types.js';

/** Longer Bearer values are refused without a call (THREATS 13/22). */
export const MAX_TOKEN_LENGTH = 4096;
/** RFC 6750 2.1 b64token. */
const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;
const DEFAULT_CACHE_TTL = '60s';
const DEFAULT_TIMEOUT = '3s';
const NEGATIVE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
const CACHE_MAX_BYTES = 16 * 1024 * 1024;
const MAX_IN_FLIGHT = 32;
/** Introspection responses larger than this are an error, not a verdict. */
const MAX_RESPONSE_BYTES = 64 * 1024;

interface ActiveVerdict {
  readonly active: true;
  readonly user: string;
  readonly subject?: string | undefined;
  readonly scopes: readonly string[];
  readonly authTime: number;
  readonly expiresAt?: number | undefined;
  readonly tokenId?: string | undefined;
}
interface InactiveVerdict {
  readonly active: false;
  readonly code: ErrorCode;
}
type Verdict = ActiveVerdict | InactiveVerdict;

/** The introspection call failed (HTTP error, timeout, not JSON): 503, never cached. */
class IntrospectionUnavailable extends Error {
  constructor(readonly reason: string) {
    super(`introspection failed: ${reason}`);
    this.name = 'IntrospectionUnavailable';
  }
}

export interface IntrospectionOptions {
  /** Clock in epoch milliseconds (tests). */
  readonly now?: () => number;
  /** Concurrent outbound calls (default 32). */
  readonly maxInFlight?: number;
}

function secretText(secret: Secret, configDir: string): string {
  return typeof secret === 'string' ? secret : readFileSync(resolve(configDir, secret.file), 'utf8').trim();
}

/** RFC 6749 2.3.1: client id and secret are form-urlencoded before they are joined for Basic. */
function basicClientAuth(clientId: string, clientSecret: string): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`, 'utf8').toString('base64')}`;
}

/** `iss` of a compact JWS, read without verifying anything; undefined for anything else. */
export function unverifiedIssuer(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    if (typeof header !== 'object' || header === null || typeof (header as { alg?: unknown }).alg !== 'string') return undefined;
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    const iss = typeof payload === 'object' && payload !== null ? (payload as { iss?: unknown }).iss : undefined;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** Issuers whose JWTs belong to a `jwt` authenticator (or to the gateway itself). */
function jwtIssuers(ctx: GatewayContext): Set<string> {
  const out = new Set<string>([selfIssuer(ctx)]);
  for (const a of Object.values(ctx.config.authenticators ?? {})) {
    if (a.type !== 'jwt') continue;
    // The schema's `type` literal is typed as string, so the union does not narrow on it.
    const { issuer } = a as AuthenticatorConfigOf<'jwt'>;
    out.add(issuer === 'self' ? selfIssuer(ctx) : issuer);
  }
  return out;
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * RFC 7662 2.2, strictly: active only when `active` is the boolean true (THREATS 17); then the
 * user is `username`, else `sub`, else `client_id`. Malformed claims make the token invalid.
 */
export function interpretIntrospection(body: unknown, nowSeconds: number, audience: string | undefined): Verdict {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { active: false, code: 'invalid_token' };
  const r = body as Record<string, unknown>;
  if (r.active !== true) return { active: false, code: 'invalid_token' };
  const pick = (k: string): string | undefined => (typeof r[k] === 'string' && (r[k] as string).length > 0 ? (r[k] as string) : undefined);
  const user = pick('username') ?? pick('sub') ?? pick('client_id');
  if (user === undefined) return { active: false, code: 'invalid_token' };
  if (r.exp !== undefined) {
    if (typeof r.exp !== 'number' || !Number.isFinite(r.exp)) return { active: false, code: 'invalid_token' };
    if (r.exp <= nowSeconds) return { active: false, code: 'token_expired' };
  }
  if (r.nbf !== undefined && (typeof r.nbf !== 'number' || !Number.isFinite(r.nbf) || r.nbf > nowSeconds)) return { active: false, code: 'invalid_token' };
  if (r.scope !== undefined && typeof r.scope !== 'string') return { active: false, code: 'invalid_token' };
  // Only access tokens authenticate requests (THREATS 11).
  if (typeof r.token_type === 'string' && /refresh/i.test(r.token_type)) return { active: false, code: 'invalid_token' };
  if (audience !== undefined) {
    const aud = r.aud;
    const ok = aud === audience || (isStringArray(aud) && aud.includes(audience));
    if (!ok) return { active: false, code: 'invalid_token' };
  }
  // The sign-in time is `auth_time` when the AS gives it, else `iat`; neither means unknown: 0,
  // which no require.maxAge accepts (as the jwt authenticator does; issue 9.14).
  const time = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined);
  const authTime = time(r.auth_time) ?? time(r.iat) ?? 0;
  return {
    active: true,
    user,
    subject: pick('sub'),
    scopes: typeof r.scope === 'string' ? r.scope.split(' ').filter((s) => s.length > 0) : [],
    authTime,
    expiresAt: typeof r.exp === 'number' ? r.exp : undefined,
    tokenId: pick('jti'),
  };
}

export function createIntrospectionAuthenticator(
  name: string,
  cfg: AuthenticatorConfigOf<'introspection'>,
  ctx: GatewayContext,
  options: IntrospectionOptions = {},
): Authenticator {
  const now = options.now ?? Date.now;
  const endpoint = new URL(cfg.endpoint).href;
  const authorization = basicClientAuth(cfg.clientId, secretText(cfg.clientSecret, ctx.configDir));
  const cacheTtlMs = durationMs(cfg.cacheTtl, DEFAULT_CACHE_TTL);
  const timeoutMs = Math.max(1, durationMs(cfg.timeout, DEFAULT_TIMEOUT));
  const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT;
  const issuers = jwtIssuers(ctx);

  const agent = new Agent({
    connections: maxInFlight,
    keepAliveTimeout: 10_000,
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  // Entry and byte caps: what the AS returns is copied into the cache (THREATS 22).
  const positive = new LRUCache<string, ActiveVerdict>({
    max: CACHE_MAX,
    maxSize: CACHE_MAX_BYTES,
    sizeCalculation: (v) => 128 + v.user.length + (v.subject?.length ?? 0) + (v.tokenId?.length ?? 0) + v.scopes.reduce((n, s) => n + s.length + 16, 0),
    ttl: Math.max(1, cacheTtlMs),
  });
  const negative = new LRUCache<string, InactiveVerdict>({ max: CACHE_MAX, ttl: Math.max(1, Math.min(cacheTtlMs, NEGATIVE_TTL_MS)) });
  const pending = new Map<string, Promise<Verdict>>();
  let inFlight = 0;

  async function callEndpoint(token: string): Promise<unknown> {
    const body = new URLSearchParams({ token, token_type_hint: 'access_token' }).toString();
    let res;
    try {
      res = await undiciRequest(endpoint, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new IntrospectionUnavailable(err instanceof Error ? err.name : 'request failed');
    }
    try {
      if (res.statusCode !== 200) throw new IntrospectionUnavailable(`status ${res.statusCode}`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        const buf = chunk as Buffer;
        size += buf.length;
        if (size > MAX_RESPONSE_BYTES) throw new IntrospectionUnavailable('response too large');
        chunks.push(buf);
      }
      try {
        return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      } catch {
        throw new IntrospectionUnavailable('response is not JSON');
      }
    } catch (err) {
      if (!res.body.destroyed) {
        // The connection is dropped rather than drained; destroy() emits an error nobody awaits.
        res.body.on('error', () => undefined);
        res.body.destroy();
      }
      if (err instanceof IntrospectionUnavailable) throw err;
      throw new IntrospectionUnavailable(err instanceof Error ? err.name : 'read failed');
    }
  }

  async function introspect(key: string, token: string): Promise<Verdict> {
    inFlight++;
    try {
      const body = await callEndpoint(token);
      const verdict = interpretIntrospection(body, Math.floor(now() / 1000), cfg.audience);
      if (verdict.active) {
        // Never past the token's own end (THREATS 19).
        const ttl = verdict.expiresAt === undefined ? cacheTtlMs : Math.min(cacheTtlMs, verdict.expiresAt * 1000 - now());
        if (ttl >= 1) positive.set(key, verdict, { ttl });
      } else if (cacheTtlMs >= 1) {
        negative.set(key, verdict);
      }
      return verdict;
    } finally {
      inFlight--;
    }
  }

  function identityOutcome(v: ActiveVerdict): AuthOutcome {
    return authenticated({
      user: v.user,
      groups: [],
      scopes: v.scopes,
      method: 'introspection',
      authenticator: name,
      mfa: false,
      amr: ['token'],
      authTime: v.authTime,
      subject: v.subject,
      tokenId: v.tokenId,
      expiresAt: v.expiresAt,
    });
  }

  const cacheKeyOf = credentialCacheKey(ctx.cacheKey, 'introspection', name, endpoint);

  /** Synchronous on a cache hit (positive or negative); a promise only when the endpoint is asked. */
  function authenticate(request: AuthRequest): AuthOutcome | Promise<AuthOutcome> {
    const header = request.headers.authorization;
    if (header === undefined) return NOT_MINE;
    const space = header.indexOf(' ');
    if (space <= 0 || header.slice(0, space).toLowerCase() !== 'bearer') return NOT_MINE;
    const token = header.slice(space + 1).trim();
    if (token.length > 0 && token.length <= MAX_TOKEN_LENGTH) {
      // Tokens the gateway itself issued are never sent to a third party: any token of its
      // format, whatever its prefix (the token store accepts those of every past prefix; issue 9.15).
      if (isWellFormedToken(token)) return NOT_MINE;
      const iss = unverifiedIssuer(token);
      if (iss !== undefined && issuers.has(iss)) return NOT_MINE;
    }
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || !B64TOKEN_RE.test(token)) return rejected('invalid_token');

    const key = cacheKeyOf(token);
    const hit = positive.get(key);
    if (hit) {
      ctx.metrics?.cache.inc('introspection', 'hit');
      if (hit.expiresAt !== undefined && hit.expiresAt * 1000 <= now()) {
        positive.delete(key);
        return rejected('token_expired');
      }
      return identityOutcome(hit);
    }
    const inactive = negative.get(key);
    ctx.metrics?.cache.inc('introspection', inactive ? 'negative_hit' : 'miss');
    if (inactive) return rejected(inactive.code);

    let call = pending.get(key);
    if (!call) {
      if (inFlight >= maxInFlight) {
        request.log.warn({ authenticator: name }, 'introspection concurrency limit reached');
        return rejected('service_unavailable', 'The token could not be checked; try again.');
      }
      call = introspect(key, token);
      pending.set(key, call);
      const clear = (): void => void pending.delete(key);
      call.then(clear, clear);
    }
    return awaitVerdict(request, call);
  }

  async function awaitVerdict(request: AuthRequest, call: Promise<Verdict>): Promise<AuthOutcome> {
    let verdict: Verdict;
    try {
      verdict = await call;
    } catch (err) {
      const reason = err instanceof IntrospectionUnavailable ? err.reason : 'error';
      request.log.warn({ authenticator: name, reason }, 'token introspection failed');
      return rejected('service_unavailable', 'The token could not be checked; try again.');
    }
    return verdict.active ? identityOutcome(verdict) : rejected(verdict.code);
  }

  return {
    name,
    type: 'introspection',
    authenticate,
    challenge(rejection?: Rejected) {
      if (rejection && (rejection.code === 'invalid_token' || rejection.code === 'token_expired' || rejection.code === 'token_revoked')) {
        return 'Bearer realm="authgate", error="invalid_token"';
      }
      return 'Bearer realm="authgate"';
    },
    async close() {
      positive.clear();
      negative.clear();
      await agent.close();
    },
  };
}
