// Boots real gateways for integration tests: config object -> YAML file in a temp dir ->
// startGateway on 127.0.0.1 port 0 (public and admin), closed on teardown.
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { startGateway, type RunningGateway } from '../../src/gateway.js';
import { startEcho, type EchoServer } from '../../src/demo/echo.js';
import { createLogger } from '../../src/ops/logger.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestGateway extends RunningGateway {
  readonly dir: string;
  readonly configFile: string;
  /** Every log line the gateway wrote (parsed JSON), for redaction assertions. */
  readonly logs: Record<string, unknown>[];
  readonly rawLogs: string[];
  /** Rewrite the config file (for reload tests). */
  writeConfig(config: Record<string, unknown>): void;
}

export function makeTempDir(t: Teardown, name = 'authgate-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Start a gateway. `config` is the YAML config as an object; `server.listen`/`admin` default to
 * port 0 and `store` to memory unless given. Extra files (users file, keys) go in `files`.
 */
export async function startTestGateway(
  t: Teardown,
  config: Record<string, unknown>,
  opts: { dir?: string; files?: Record<string, string>; logLevel?: string } = {},
): Promise<TestGateway> {
  const dir = opts.dir ?? makeTempDir(t);
  for (const [name, content] of Object.entries(opts.files ?? {})) {
    const file = join(dir, name);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
  }
  const server = (config.server ?? {}) as Record<string, unknown>;
  const full: Record<string, unknown> = {
    ...config,
    server: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, ...server },
    store: config.store ?? { driver: 'memory' },
  };
  const configFile = join(dir, 'authgate.yaml');
  writeFileSync(configFile, stringify(full));
  const rawLogs: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        rawLogs.push(line);
        try { logs.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not JSON */ }
      }
      cb();
    },
  });
  // The gateway's own logger factory (with redaction), writing to a sink the test can read.
  const gw = await startGateway({ configFile, logger: createLogger(opts.logLevel ?? process.env.LOG_LEVEL ?? 'debug', sink) });
  t.teardown(() => gw.close());
  return Object.assign(gw, {
    dir,
    configFile,
    logs,
    rawLogs,
    writeConfig(next: Record<string, unknown>) {
      const s = (next.server ?? {}) as Record<string, unknown>;
      writeFileSync(configFile, stringify({ ...next, server: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, ...s }, store: next.store ?? { driver: 'memory' } }));
    },
  });
}

export async function startTestEcho(t: Teardown): Promise<EchoServer> {
  const echo = await startEcho();
  t.teardown(() => echo.close());
  return echo;
}

/** Poll `check` until it returns true or `timeoutMs` passes (no fixed sleeps in tests). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
