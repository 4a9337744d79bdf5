// authgate as a benchmark child process: startGateway on the given config, logging at the given
// level to stdout (which run.ts points at /dev/null), and a few IPC commands for the harness.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { startGateway } from '../src/gateway.js';
import { createLogger } from '../src/ops/logger.js';
import { handleProfileMessage } from './child-profiler.js';
import { createFloorHandler, floorJwtCheck } from './floor-handler.js';

const [configFile, level = 'warn'] = process.argv.slice(2);
if (!configFile) throw new Error('usage: gateway-child.ts CONFIG_FILE [LEVEL]');

delete process.env.LOG_LEVEL; // the level is the harness's choice, not the environment's
const logger = createLogger(level);
const gw = await startGateway({ configFile, logger });
process.send?.({ ready: true, url: gw.url, adminUrl: gw.adminUrl, pid: process.pid });

const exit = (): void => void gw.close().finally(() => process.exit(0));

/** One window of an alternation: the state it ran in, this process's CPU time, the requests it received. */
interface Window { state: string; cpuUs: number; requests: number }

/**
 * Runs `windows` windows of `ms` each, cycling through `states` (applied by `apply` at each
 * window's start), and returns each window's CPU time and received requests: two ways of
 * serving compared within one run of one load, so the machine's drift (seconds long on these
 * VMs) lands on both alike.
 */
function alternate(states: string[], apply: (state: string) => void, ms: number, windows: number): Promise<Window[]> {
  const out: Window[] = [];
  let requests = 0;
  const onRequest = (): void => { requests++; };
  gw.server.prependListener('request', onRequest);
  return new Promise((resolve) => {
    const window = (): void => {
      const state = states[out.length % states.length] as string;
      apply(state);
      const cpu0 = process.cpuUsage();
      const n0 = requests;
      setTimeout(() => {
        const cpu = process.cpuUsage(cpu0);
        out.push({ state, cpuUs: cpu.user + cpu.system, requests: requests - n0 });
        if (out.length < windows) return window();
        gw.server.off('request', onRequest);
        resolve(out);
      }, ms);
    };
    window();
  });
}

/**
 * The Node floor in this process: while the state is 'floor', the public listener's requests go
 * to the floor's handler (bench/floor-handler.ts, its own Pool to the upstream) instead of the
 * gateway, so the two are compared in one process, heap and JIT state included. With `jwt`, the
 * floor checks every request's RS256 bearer token first (the floor with the same cached check).
 */
function floorSwitch(upstream: string, jwt?: { keyFile: string; issuer: string; audience: string }): { apply(state: string): void; restore(): Promise<void> } {
  const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
  const floor = createFloorHandler(pool, jwt && floorJwtCheck(jwt.keyFile, jwt.issuer, jwt.audience, () => true));
  const gateway = gw.server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  let toFloor = false;
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    if (toFloor) floor(req, res);
    else for (const l of gateway) l(req, res);
  };
  gw.server.removeAllListeners('request');
  gw.server.on('request', route);
  return {
    apply(state) { toFloor = state === 'floor'; },
    async restore() {
      gw.server.off('request', route);
      for (const l of gateway) gw.server.on('request', l);
      await pool.close();
    },
  };
}

process.on('message', (m: { cmd?: string; id?: number; level?: string; file?: string; states?: string[]; ms?: number; windows?: number; upstream?: string; jwt?: { keyFile: string; issuer: string; audience: string } }) => {
  if (handleProfileMessage(m)) return;
  const reply = (body: Record<string, unknown> = {}): void => void process.send?.({ reply: m.id, ...body });
  switch (m.cmd) {
    case 'level':
      // pino reads the level on every call, and the per-request log line checks it per request.
      gw.logger.level = m.level ?? 'warn';
      reply({ level: gw.logger.level });
      break;
    case 'alternate': {
      // states: log levels, or 'gateway' and 'floor' (with m.upstream, and m.jwt for the floor's check).
      const states = m.states ?? ['warn', 'info'];
      const ms = m.ms ?? 250;
      const windows = m.windows ?? 40;
      if (m.upstream !== undefined) {
        const sw = floorSwitch(m.upstream, m.jwt);
        void alternate(states, (s) => sw.apply(s), ms, windows).then(async (w) => { await sw.restore(); reply({ windows: w }); });
      } else {
        void alternate(states, (s) => { gw.logger.level = s; }, ms, windows).then((w) => { gw.logger.level = 'warn'; reply({ windows: w }); });
      }
      break;
    }
    case 'gc': {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc) { gc(); gc(); }
      reply({ gc: gc !== undefined, memory: process.memoryUsage() });
      break;
    }
    case 'memory':
      reply({ memory: process.memoryUsage() });
      break;
    case 'exit':
      exit();
      break;
    default:
      reply({ error: `unknown command ${String(m.cmd)}` });
  }
});
process.on('disconnect', exit);
process.on('SIGTERM', exit);
