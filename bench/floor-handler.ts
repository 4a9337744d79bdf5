// The Node floor's request handler (issue 12): forwards with an undici Pool (dispatch, streamed
// both ways), no framework, no auth unless `check` is given. Used by the floor's own process
// (node-floor.ts) and, alternated with the gateway in the gateway's process, by gateway-child.ts.
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createVerifier } from 'fast-jwt';
import { LRUCache } from 'lru-cache';
import type { Dispatcher, Pool } from 'undici';

export interface FloorCheck {
  needsCheck(url: string): boolean;
  userOf(authorization: string | undefined): string | undefined;
}

/**
 * The floor's credential check: an RS256 bearer token verified with fast-jwt (key, issuer and
 * audience of the gateway's `jwt-rs256` route), remembered by token as the gateway remembers
 * verifications.
 */
export function floorJwtCheck(keyFile: string, issuer: string, audience: string, needsCheck: (url: string) => boolean): FloorCheck {
  const verify = createVerifier({ key: readFileSync(keyFile, 'utf8'), algorithms: ['RS256'], allowedIss: issuer, allowedAud: audience, cache: false });
  const cache = new LRUCache<string, { user: string; exp: number }>({ max: 10_000, ttl: 60_000 });
  return {
    needsCheck,
    userOf(authorization) {
      if (!authorization?.startsWith('Bearer ')) return undefined;
      const token = authorization.slice(7);
      const now = Date.now() / 1000;
      const hit = cache.get(token);
      if (hit && hit.exp > now) return hit.user;
      try {
        const payload = verify(token) as { sub?: string; exp?: number };
        const user = payload.sub ?? '';
        cache.set(token, { user, exp: payload.exp ?? now + 60 });
        return user;
      } catch {
        return undefined;
      }
    },
  };
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'host']);

/**
 * `check` (optional) answers the user a request is for, or undefined to refuse it with a 401;
 * it is asked only for requests it applies to (`needsCheck`).
 */
export function createFloorHandler(pool: Pool, check?: FloorCheck) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const headers: IncomingHttpHeaders = { ...req.headers };
    if (check?.needsCheck(url)) {
      const user = check.userOf(req.headers.authorization);
      if (user === undefined) { res.writeHead(401, { 'content-length': 0 }); res.end(); return; }
      delete headers.authorization;
      headers['x-auth-user'] = user;
    }
    delete headers.connection;
    const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
    const hasBody = method !== 'GET' && method !== 'HEAD' && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
    delete headers['transfer-encoding'];
    pool.dispatch({ path: url, method, headers: headers as Record<string, string>, body: hasBody ? req : null }, {
      onRequestStart(controller) { res.once('close', () => { if (!res.writableFinished) controller.abort(new Error('client gone')); }); },
      onResponseStart(controller, status, h) {
        for (const k in h) if (!HOP.has(k)) res.setHeader(k, h[k] as string | string[]);
        res.writeHead(status);
        res.on('drain', () => controller.resume());
      },
      onResponseData(controller, chunk) { if (!res.write(chunk)) controller.pause(); },
      onResponseEnd() { res.end(); },
      onResponseError() { if (!res.headersSent) { res.writeHead(502, { 'content-length': 0 }); res.end(); } else res.destroy(); },
    });
  };
}
