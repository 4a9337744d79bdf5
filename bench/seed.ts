// Credentials the benchmark needs from a running gateway: a session cookie, an opaque API token
// and a gateway-issued JWT. Each comes from the gateway's own endpoint (POST /login, /token,
// /jwt/token) as a client would get it; where that endpoint is not there, it is made with the
// gateway's own service against the same store, so the bench runs on any stage of the tree.
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { buildContext } from '../src/server.js';
import type { GatewayContext } from '../src/context.js';
import { PREFIX } from './fixtures.js';

export interface SeededCredentials {
  /** `name=value` of the session cookie. */
  sessionCookie?: string;
  /** `name=value` of a session as an OIDC sign-in creates it (method oidc:bench): same request path. */
  oidcSessionCookie?: string;
  apiToken?: string;
  selfJwt?: string;
  /** How each was obtained, for the report. */
  how: Record<string, 'endpoint' | 'service' | 'unavailable'>;
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown>; setCookie: string[] }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', origin: new URL(url).origin }, body: JSON.stringify(body) });
  let json: Record<string, unknown> = {};
  try { json = (await res.json()) as Record<string, unknown>; } catch { /* not JSON */ }
  return { status: res.status, json, setCookie: res.headers.getSetCookie() };
}

/** A context on the gateway's config and store (same sqlite file / Redis prefix). */
async function withContext<T>(configFile: string, gatewayUrl: string, fn: (ctx: GatewayContext) => Promise<T>): Promise<T> {
  const loaded = await loadConfig(configFile);
  const { ctx, close } = await buildContext(loaded, { logger: pino({ level: 'silent' }), defaultPublicUrl: gatewayUrl });
  try {
    return await fn(ctx);
  } finally {
    await close();
  }
}

export async function seedCredentials(
  configFile: string,
  gatewayUrl: string,
  user: { name: string; password: string },
  want: { session: boolean; token: boolean; selfJwt: boolean },
): Promise<SeededCredentials> {
  const out: SeededCredentials = { how: {} };
  const cookieName = 'authgate_session';

  if (want.session) {
    const r = await postJson(`${gatewayUrl}${PREFIX}/login`, { username: user.name, password: user.password });
    const c = r.setCookie.map((s) => s.split(';')[0] ?? '').find((s) => s.startsWith(`${cookieName}=`) && s.length > cookieName.length + 1);
    if (r.status === 200 && c) {
      out.sessionCookie = c;
      out.how.session = 'endpoint';
    } else {
      const { acquireSessionService } = await import('../src/sessions/service.js');
      out.sessionCookie = await withContext(configFile, gatewayUrl, async (ctx) => {
        const record = await ctx.users.get(user.name);
        if (!record) throw new Error('bench user missing from the users file');
        const { service, release } = acquireSessionService(ctx);
        try {
          const { cookie } = await service.create({ user: record.username, email: record.email, groups: record.groups, method: 'session', amr: ['pwd'], mfa: false, passwordHash: record.passwordHash });
          return `${service.cookieName}=${cookie}`;
        } finally {
          release();
        }
      });
      out.how.session = 'service';
    }
  }

  if (want.session) {
    // No OpenID Provider in the bench: the session is made the way the OIDC callback makes it.
    const { acquireSessionService } = await import('../src/sessions/service.js');
    out.oidcSessionCookie = await withContext(configFile, gatewayUrl, async (ctx) => {
      const { service, release } = acquireSessionService(ctx);
      try {
        const { cookie } = await service.create({
          user: user.name, email: `${user.name}@example.test`, groups: ['staff'], method: 'oidc:bench', amr: ['fed'], mfa: false,
          oidc: { provider: 'bench', iss: 'https://op.bench.test', sub: user.name, sid: 'bench-sid' },
        });
        return `${service.cookieName}=${cookie}`;
      } finally {
        release();
      }
    }).catch(() => undefined);
    out.how.oidcSession = out.oidcSessionCookie !== undefined ? 'service' : 'unavailable';
  }

  if (want.token) {
    const r = await postJson(`${gatewayUrl}${PREFIX}/token`, { username: user.name, password: user.password });
    if (r.status === 200 && typeof r.json.token === 'string') {
      out.apiToken = r.json.token;
      out.how.token = 'endpoint';
    } else {
      const { acquireApiTokens } = await import('../src/tokens/api-tokens.js');
      out.apiToken = await withContext(configFile, gatewayUrl, async (ctx) => {
        const { service, release } = acquireApiTokens(ctx);
        try {
          return (await service.createToken({ user: user.name, name: 'bench' })).token;
        } finally {
          release();
        }
      });
      out.how.token = 'service';
    }
  }

  if (want.selfJwt) {
    const r = await postJson(`${gatewayUrl}${PREFIX}/jwt/token`, { username: user.name, password: user.password });
    if (r.status === 200 && typeof r.json.access === 'string') {
      out.selfJwt = r.json.access;
      out.how.selfJwt = 'endpoint';
    } else {
      const { issueAccessToken, jwtSettings } = await import('../src/tokens/jwt-issuer.js');
      out.selfJwt = await withContext(configFile, gatewayUrl, async (ctx) => {
        const record = await ctx.users.get(user.name);
        if (!record) throw new Error('bench user missing from the users file');
        return issueAccessToken(ctx, jwtSettings(ctx.config.jwt), { user: record, amr: ['pwd'], authTime: Math.floor(Date.now() / 1000) }).token;
      });
      out.how.selfJwt = 'service';
    }
  }
  return out;
}
