// authgate as a benchmark child process: startGateway on the given config, logging at the given
// level to stdout (which run.ts points at /dev/null), and a few IPC commands for the harness.
import { startGateway } from '../src/gateway.js';
import { createLogger } from '../src/ops/logger.js';
import { handleProfileMessage } from './child-profiler.js';

const [configFile, level = 'warn'] = process.argv.slice(2);
if (!configFile) throw new Error('usage: gateway-child.ts CONFIG_FILE [LEVEL]');

delete process.env.LOG_LEVEL; // the level is the harness's choice, not the environment's
const logger = createLogger(level);
const gw = await startGateway({ configFile, logger });
process.send?.({ ready: true, url: gw.url, adminUrl: gw.adminUrl, pid: process.pid });

const exit = (): void => void gw.close().finally(() => process.exit(0));

/**
 * Alternates the log level every `ms` for `windows` windows and sums, per level, this process's
 * CPU time and the requests it received: the info-minus-warn cost measured in one run of one
 * load, with the machine's drift (seconds long on these VMs) landing on both levels alike.
 */
function alternateLevels(levels: string[], ms: number, windows: number): Promise<Record<string, { cpuUs: number; requests: number }>> {
  const acc: Record<string, { cpuUs: number; requests: number }> = {};
  for (const l of levels) acc[l] = { cpuUs: 0, requests: 0 };
  let requests = 0;
  const onRequest = (): void => { requests++; };
  gw.server.on('request', onRequest);
  return new Promise((resolve) => {
    let i = 0;
    const window = (): void => {
      const level = levels[i % levels.length] as string;
      gw.logger.level = level;
      const cpu0 = process.cpuUsage();
      const n0 = requests;
      setTimeout(() => {
        const cpu = process.cpuUsage(cpu0);
        const a = acc[level] as { cpuUs: number; requests: number };
        a.cpuUs += cpu.user + cpu.system;
        a.requests += requests - n0;
        if (++i < windows) return window();
        gw.server.off('request', onRequest);
        gw.logger.level = 'warn';
        resolve(acc);
      }, ms);
    };
    window();
  });
}

process.on('message', (m: { cmd?: string; id?: number; level?: string; file?: string; levels?: string[]; ms?: number; windows?: number }) => {
  if (handleProfileMessage(m)) return;
  const reply = (body: Record<string, unknown> = {}): void => void process.send?.({ reply: m.id, ...body });
  switch (m.cmd) {
    case 'level':
      // pino reads the level on every call, and the per-request log line checks it per request.
      gw.logger.level = m.level ?? 'warn';
      reply({ level: gw.logger.level });
      break;
    case 'alternate':
      void alternateLevels(m.levels ?? ['warn', 'info'], m.ms ?? 250, m.windows ?? 40).then((levels) => reply({ levels }));
      break;
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
