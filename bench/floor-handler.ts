// The Node floor's request handler (issue 12): forwards with an undici Pool (dispatch, streamed
// both ways), no framework, no auth unless `check` is given. Used by the floor's own process
// (node-floor.ts) and, alternated with the gateway in the gateway's process, by gateway-child.ts.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher, Pool } from 'undici';

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'host']);

/**
 * `check` (optional) answers the user a request is for, or undefined to refuse it with a 401;
 * it is asked only for requests it applies to (`needsCheck`).
 */
export function createFloorHandler(pool: Pool, check?: { needsCheck(url: string): boolean; userOf(authorization: string | undefined): string | undefined }) {
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
