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

process.on('message', (m: { cmd?: string; id?: number; level?: string; file?: string }) => {
  if (handleProfileMessage(m)) return;
  const reply = (body: Record<string, unknown> = {}): void => void process.send?.({ reply: m.id, ...body });
  switch (m.cmd) {
    case 'level':
      // pino reads the level on every call, and the per-request log line checks it per request.
      gw.logger.level = m.level ?? 'warn';
      reply({ level: gw.logger.level });
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
