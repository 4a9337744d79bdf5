// Process lifecycle: listen, build the gateway, swap it atomically on reload (SIGHUP or a
// changed config file; a bad config keeps the old one serving), drain on SIGTERM/SIGINT.
import { watch, type FSWatcher } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { basename, dirname } from 'node:path';
import type pino from 'pino';
import { announceWorkerReady, clusterWorkerLogger, startClusterIfConfigured } from './cluster.js';
import { serveWorkerMetrics } from './ops/cluster-metrics.js';
import { ConfigError, loadConfig, type LoadedConfig } from './config/load.js';
import { problemBody } from './errors.js';
import { createLogger } from './ops/logger.js';
import { buildGateway, type BuiltGateway } from './server.js';
import { durationMs } from './util/duration.js';

export interface StartOptions {
  configFile: string;
  logger?: pino.Logger;
  /** Reload when the config file changes (the CLI turns this on). */
  watchConfig?: boolean;
}

export interface RunningGateway {
  /** Base URL of the public listener, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly adminUrl: string;
  readonly server: Server;
  readonly adminServer: Server;
  readonly logger: pino.Logger;
  current(): BuiltGateway;
  /** Load the config again; false (and the old config keeps serving) when it is invalid. */
  reload(): Promise<boolean>;
  /** Stop accepting, drain in-flight requests (up to server.drainTimeout), release everything. */
  close(): Promise<void>;
}

interface Generation {
  gw: BuiltGateway;
  inFlight: number;
  idle?: () => void;
}

function rawProblem(res: ServerResponse, code: 'service_unavailable'): void {
  const body = JSON.stringify(problemBody(code));
  res.writeHead(problemBody(code).status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

async function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => { server.off('error', reject); resolve(); });
  });
  return server.address() as AddressInfo;
}

export async function startGateway(opts: StartOptions): Promise<RunningGateway> {
  let loaded: LoadedConfig = await loadConfig(opts.configFile);
  const cfg = loaded.config;
  const logger = opts.logger ?? createLogger(cfg.server?.logLevel);
  if (cfg.store?.driver === 'memory') logger.warn('store driver is memory: sessions, tokens and counters are lost on restart');

  const maxHeaderSize = cfg.server?.maxHeaderSize ?? 16 * 1024;
  // Node checks the header/request timeouts every 30 s by default, so a slowloris socket lived up
  // to 50 s; checking every second closes it at headersTimeout (THREATS 94).
  const server = createServer({ maxHeaderSize, headersTimeout: 20_000, requestTimeout: 300_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 });
  const adminServer = createServer({ maxHeaderSize, headersTimeout: 10_000, requestTimeout: 30_000 });
  let generation: Generation | undefined;
  let closing = false;

  const track = (g: Generation, res: ServerResponse) => {
    g.inFlight++;
    // 'on', not 'once': a response closes once, and once's wrapper and removal cost on every request.
    res.on('close', () => {
      g.inFlight--;
      if (g.inFlight === 0 && g.idle) g.idle();
    });
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const g = generation;
    if (!g) return rawProblem(res, 'service_unavailable');
    track(g, res);
    if (closing) res.setHeader('connection', 'close');
    g.gw.handleRequest(req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const g = generation;
    if (!g || closing) return socket.destroy();
    g.gw.handleUpgrade(req, socket, head);
  });
  // Malformed requests (smuggling attempts, oversized headers) get a problem+json and a closed connection.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const p = problemBody(tooLarge ? 'headers_too_large' : 'bad_request');
    const status = timeout ? 408 : p.status;
    const body = JSON.stringify({ ...p, status, ...(timeout ? { title: 'Request Timeout', detail: 'The request took too long.' } : {}) });
    socket.end(`HTTP/1.1 ${status} ${timeout ? 'Request Timeout' : p.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  adminServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const g = generation;
    if (!g) return rawProblem(res, 'service_unavailable');
    g.gw.handleAdminRequest(req, res);
  });

  const listenCfg = cfg.server?.listen ?? { host: '127.0.0.1', port: 8080 };
  const adminCfg = cfg.server?.admin ?? { host: '127.0.0.1', port: 9090 };
  const addr = await listen(server, listenCfg.host, listenCfg.port);
  let adminAddr: AddressInfo;
  try {
    adminAddr = await listen(adminServer, adminCfg.host, adminCfg.port);
  } catch (err) {
    server.close();
    throw err;
  }
  const url = `http://${formatHost(addr.address)}:${addr.port}`;
  const adminUrl = `http://${formatHost(adminAddr.address)}:${adminAddr.port}`;

  try {
    generation = { gw: await buildGateway(loaded, { logger, defaultPublicUrl: url }), inFlight: 0 };
  } catch (err) {
    server.close();
    adminServer.close();
    throw err;
  }
  logger.info({ url, admin: adminUrl, routes: cfg.routes.length, store: cfg.store?.driver ?? 'sqlite' }, 'authgate listening');

  const retire = async (g: Generation, drainMs: number): Promise<void> => {
    if (g.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        timer.unref();
        g.idle = () => { clearTimeout(timer); resolve(); };
      });
    }
    await g.gw.close();
  };

  let reloading: Promise<boolean> | undefined;
  const reload = async (): Promise<boolean> => {
    if (closing) return false;
    if (reloading) return reloading;
    reloading = (async () => {
      try {
        const next = await loadConfig(opts.configFile);
        const gw = await buildGateway(next, { logger, defaultPublicUrl: url });
        const old = generation;
        generation = { gw, inFlight: 0 };
        loaded = next;
        logger.info({ routes: next.config.routes.length }, 'configuration reloaded');
        if (old) void retire(old, durationMs(next.config.server?.drainTimeout, '10s'));
        return true;
      } catch (err) {
        if (err instanceof ConfigError) for (const line of err.errors) logger.error(line);
        else logger.error({ err }, 'reload failed; the previous configuration keeps serving');
        return false;
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };

  let watcher: FSWatcher | undefined;
  if (opts.watchConfig) {
    let timer: NodeJS.Timeout | undefined;
    const file = basename(opts.configFile);
    watcher = watch(dirname(opts.configFile), (_event, name) => {
      if (name !== null && name !== file) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), 200);
      timer.unref();
    });
    watcher.on('error', (err: unknown) => logger.warn({ err }, 'config watcher failed'));
  }

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      watcher?.close();
      const drainMs = durationMs(loaded.config.server?.drainTimeout, '10s');
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const g = generation;
      if (g) {
        await retire(g, drainMs);
      }
      server.closeAllConnections();
      await stopped;
      await new Promise<void>((resolve) => adminServer.close(() => resolve()));
      adminServer.closeAllConnections();
      logger.info('authgate stopped');
    })();
    return closed;
  };

  return { url, adminUrl, server, adminServer, logger, current: () => (generation as Generation).gw, reload, close };
}

/** `authgate start`: run until SIGTERM/SIGINT; SIGHUP reloads. */
export async function runGateway(opts: { configFile: string }): Promise<{ close(): Promise<void> }> {
  // server.workers > 1: this process becomes the cluster primary and each worker runs this again.
  const primary = await startClusterIfConfigured(opts.configFile);
  if (primary) return primary;
  const logger = await clusterWorkerLogger(opts.configFile);
  const gw = await startGateway({ configFile: opts.configFile, watchConfig: true, ...(logger ? { logger } : {}) });
  serveWorkerMetrics(() => gw.current().metrics.registry);
  announceWorkerReady();
  const stop = (signal: string) => {
    gw.logger.info({ signal }, 'draining');
    // The gathered request lines and the log destination are flushed before exiting (and again on 'exit').
    const exit = (code: number) => gw.logger.flush(() => process.exit(code));
    gw.close().then(() => exit(0), () => exit(1));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void gw.reload());
  return gw;
}
