// The admin listener (SPEC 7): health, readiness and metrics, never on the public listener.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type pino from 'pino';
import type { GatewayContext } from '../context.js';
import { sendProblem } from '../errors.js';
import type { RouteData } from '../pipeline/decide.js';
import type { Authenticator } from '../pipeline/types.js';
import type { RouteTable } from '../routing/table.js';
import type { Metrics } from './metrics.js';
import { isClusterWorker, scrapeCluster } from './cluster-metrics.js';

export interface Readiness { ok: boolean; body: { status: string; checks: Record<string, string> } }

export interface AdminApp {
  readonly app: FastifyInstance;
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readiness(): Promise<Readiness>;
}

/** Store, every authenticator with a readiness check (JWKS, introspection), every route's upstream. */
function readinessCheck(ctx: GatewayContext, authenticators: ReadonlyMap<string, Authenticator>, table: RouteTable<RouteData>): () => Promise<Readiness> {
  return async () => {
    const checks: Record<string, string> = {};
    let ok = true;
    const timed = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('timeout')), 2000).unref())]);
    try { await timed(ctx.store.ping()); checks.store = 'ok'; } catch { checks.store = 'unavailable'; ok = false; }
    await Promise.all([...authenticators.values()].map(async (a) => {
      if (!a.ready) return;
      const key = `${a.type === 'jwt' ? 'jwks' : a.type}:${a.name}`;
      try { const s = await timed(a.ready()); checks[key] = s; if (s !== 'ok') ok = false; } catch { checks[key] = 'unavailable'; ok = false; }
    }));
    const now = Date.now();
    for (const r of table.routes) {
      const healthy = r.data.upstream.healthy(now);
      checks[`upstream:${r.name}`] = healthy ? 'ok' : 'unavailable';
      if (!healthy) ok = false;
    }
    return { ok, body: { status: ok ? 'ok' : 'degraded', checks } };
  };
}

export async function createAdminApp(ctx: GatewayContext, deps: { log: pino.Logger; metrics: Metrics; authenticators: ReadonlyMap<string, Authenticator>; table: RouteTable<RouteData> }): Promise<AdminApp> {
  const { metrics } = deps;
  const readiness = readinessCheck(ctx, deps.authenticators, deps.table);
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const admin = Fastify({ loggerInstance: deps.log, logController: new LogController({ disableRequestLogging: true }), serverFactory: (h) => { handler = h; return createServer(); } });
  admin.setNotFoundHandler((_r, reply) => sendProblem(reply, 'not_found'));
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/readyz', async (_request, reply) => {
    const r = await readiness();
    return reply.code(r.ok ? 200 : 503).header('cache-control', 'no-store').send(r.body);
  });
  admin.get('/metrics', async (_request, reply) => {
    // In a cluster worker, the primary sums every worker's metrics (ops/cluster-metrics.ts).
    if (!isClusterWorker()) return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
    try {
      return reply.header('content-type', metrics.registry.contentType).send(await scrapeCluster());
    } catch {
      return sendProblem(reply, 'service_unavailable', 'Metrics from the other workers are not available.');
    }
  });
  await admin.ready();
  if (!handler) throw new Error('server factory was not called');
  return { app: admin as unknown as FastifyInstance, handler, readiness };
}
