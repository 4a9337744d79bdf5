// The optional signed identity assertion (identity.assertion): a short JWT from the gateway's
// signing key, for upstreams that verify instead of trusting X-Auth-User. Cached briefly per
// identity so the hot path signs at most once per half-TTL.
import { LRUCache } from 'lru-cache';
import type { GatewayContext } from '../context.js';
import type { Identity } from './types.js';

export class AssertionSigner {
  private readonly cache: LRUCache<string, string>;
  private readonly issuer: string;

  constructor(private readonly ctx: GatewayContext, private readonly ttlMs: number) {
    this.cache = new LRUCache({ max: 10_000, ttl: Math.max(1000, Math.floor(ttlMs / 2)) });
    this.issuer = ctx.publicUrl.origin + ctx.prefix;
  }

  assertionFor(identity: Identity, route: string): string {
    const key = `${route}\0${identity.authenticator}\0${identity.user}\0${identity.sessionId ?? identity.tokenId ?? ''}\0${identity.groups.join(',')}\0${identity.mfa}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const now = Math.floor(Date.now() / 1000);
    const token = this.ctx.signing.sign(
      {
        iss: this.issuer,
        aud: route,
        sub: identity.user,
        iat: now,
        exp: now + Math.max(1, Math.floor(this.ttlMs / 1000)),
        ...(identity.email ? { email: identity.email } : {}),
        groups: identity.groups,
        scope: identity.scopes.join(' '),
        amr: identity.amr,
        auth_time: identity.authTime || undefined,
        method: identity.method,
        mfa: identity.mfa,
      },
      { typ: 'authgate-assertion+jwt' },
    );
    this.cache.set(key, token);
    return token;
  }
}
