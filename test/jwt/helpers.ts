// Shared fixtures for the JWT tests: a GatewayContext over a real store, an in-memory user
// directory whose records can be changed, and a recording logger.
import { createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactSign } from 'jose';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../src/config/schema.js';
import type { GatewayContext, UserRecord } from '../../src/context.js';
import { MapUserDirectory, NO_LOCKOUT } from '../helpers/users.js';
import { loadSigningKeys } from '../../src/credentials/keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface LogLine {
  level: string;
  obj: unknown;
  msg: string | undefined;
}

/** A logger that records every line (for "reuse is logged" and "no secret logged" checks). */
export function recordingLogger(lines: LogLine[] = []): FastifyBaseLogger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const log = {
    lines,
    level: 'debug',
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: () => undefined,
    child: () => log,
  };
  return log as unknown as FastifyBaseLogger & { lines: LogLine[] };
}

export class TestUsers extends MapUserDirectory {
  #n = 0;

  add(username: string, extra: Partial<UserRecord> = {}): UserRecord {
    return this.set({ username, groups: [], disabled: false, mfaRequired: false, version: `v${++this.#n}`, ...extra });
  }

  /** Changes a record the way a password change or `disabled: true` does: new version. */
  update(username: string, change: Partial<UserRecord>): void {
    const old = this.users.get(username);
    if (!old) throw new Error(`no user ${username}`);
    this.set({ ...old, ...change, version: `v${++this.#n}` });
  }
}


export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-jwt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestContextOptions {
  config?: Partial<Config>;
  store?: Store;
  dir?: string;
  users?: TestUsers;
  log?: FastifyBaseLogger;
}

export async function testContext(t: Teardown, opts: TestContextOptions = {}): Promise<GatewayContext & { users: TestUsers }> {
  const dir = opts.dir ?? tempDir(t);
  const store = opts.store ?? new MemoryStore();
  if (!opts.store) t.teardown(() => store.close());
  const log = opts.log ?? recordingLogger();
  const config = { routes: [], ...opts.config } as Config;
  const signing = await loadSigningKeys(config.signing, { configDir: dir, log });
  return {
    config,
    configDir: dir,
    publicUrl: new URL('https://gw.test'),
    prefix: '/.auth',
    store,
    users: opts.users ?? new TestUsers(),
    lockout: NO_LOCKOUT,
    signing,
    log,
    cacheKey: Buffer.alloc(32, 1),
  };
}

/** Polls `cond` every 10 ms until it holds or `ms` pass. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------
// Forging tokens (attacker side) with jose, and a local HTTP server for JWKS / canaries.


export const b64 = (v: string | Buffer | object): string =>
  Buffer.from(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v)).toString('base64url');

/** A JWS over exactly these header/payload bytes, signed by `key` with header.alg (jose). */
export async function forge(key: KeyObject, header: Record<string, unknown>, payload: object | string): Promise<string> {
  const bytes = new TextEncoder().encode(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return new CompactSign(bytes).setProtectedHeader(header as { alg: string }).sign(key);
}

/** An HS* token whose HMAC key is `secret` (key confusion attacks). */
export function forgeHmac(header: Record<string, unknown>, payload: object | string, secret: Buffer | string, hash = 'sha256'): string {
  const input = `${b64(header)}.${b64(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** RS256 over arbitrary header/payload (for headers jose refuses to produce, e.g. unknown crit). */
export function forgeRs256(key: KeyObject, header: Record<string, unknown>, payload: object): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${cryptoSign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

export const unsigned = (header: Record<string, unknown>, payload: object): string => `${b64(header)}.${b64(payload)}.`;

export interface TestServer {
  url: string;
  /** Requests received, by path. */
  hits: Map<string, number>;
  total(): number;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1:0 that counts requests; `handler` can be swapped at any time. */
export async function startServer(t: Teardown, handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => s.end()): Promise<TestServer> {
  const hits = new Map<string, number>();
  const state = { handler };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    state.handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  t.teardown(close);
  return {
    url,
    hits,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    get handler() {
      return state.handler;
    },
    set handler(h) {
      state.handler = h;
    },
    close,
  };
}

export const json = (res: ServerResponse, body: unknown, status = 200): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
