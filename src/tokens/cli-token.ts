// `authgate token create` (SPEC 2): an API token created straight in the configured store, e.g.
// for a service account, printed once by the CLI. The user must be in the user directory: the
// `token` authenticator refuses tokens of unknown users, so such a token would never work.
import { Writable } from 'node:stream';
import { loadConfig } from '../config/load.js';
import { createUserDirectory } from '../credentials/users.js';
import { openAuditLog } from '../ops/audit.js';
import { createLogger } from '../ops/logger.js';
import { createStore } from '../store/index.js';
import { parseDuration } from '../util/duration.js';
import { ApiTokenService, MAX_TOKEN_TTL_MS, SCOPE_RE, type CreatedApiToken } from './api-tokens.js';

export interface CliTokenRequest {
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;
  readonly user: string;
  readonly name?: string | undefined;
  /** `30d`, `12h`, or seconds; default tokens.defaultTtl. */
  readonly ttl?: string | undefined;
  /** Comma-separated. */
  readonly scopes?: string | undefined;
  /** Where store and directory warnings go (stderr). */
  readonly warn: (message: string) => void;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** A stream that hands each written line to `write` (pino's JSON lines to the CLI's stderr). */
function lineWriter(write: (line: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') write(line);
      cb();
    },
  });
}

function cliTtlMs(ttl: string | undefined): number | undefined {
  if (ttl === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(ttl.trim());
  } catch {
    throw new Error(`--ttl '${ttl}' is not a duration (e.g. 30d, 12h, or seconds)`);
  }
  if (!(ms >= 1000 && ms <= MAX_TOKEN_TTL_MS)) throw new Error('--ttl must be between 1 second and 365 days');
  return ms;
}

function cliScopes(scopes: string | undefined): string[] {
  const list = (scopes ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bad = list.find((s) => !SCOPE_RE.test(s));
  if (bad !== undefined) throw new Error(`--scopes: '${bad}' is not a valid scope name`);
  return list;
}

export async function createTokenFromCli(req: CliTokenRequest): Promise<CreatedApiToken> {
  const name = (req.name ?? 'cli').trim();
  if (name.length === 0 || name.length > 100 || CONTROL.test(name)) throw new Error('--name must be 1-100 printable characters');
  const ttlMs = cliTtlMs(req.ttl);
  const scopes = cliScopes(req.scopes);

  const loaded = await loadConfig(req.configFile, req.env);
  const cfg = loaded.config;
  if ((cfg.store?.driver ?? 'sqlite') === 'memory') throw new Error('the memory store keeps nothing between processes; configure sqlite or redis');
  const note = (_obj: object, msg?: string): void => {
    if (msg !== undefined) req.warn(msg);
  };
  const log = { info: () => undefined, warn: note, error: note };
  const store = await createStore(cfg.store, { configDir: loaded.dir, log });
  try {
    await store.ping();
    const users = await createUserDirectory(cfg, { configDir: loaded.dir, log, store, watch: false });
    try {
      const user = await users.get(req.user);
      if (user === undefined) throw new Error(`no user '${req.user}' in the user directory (tokens of unknown users are refused)`);
      if (user.disabled) throw new Error(`user '${req.user}' is disabled`);
    } finally {
      await users.close();
    }
    // token.created goes to the audit destination, else to stderr: stdout carries only the token.
    const auditLog = cfg.audit ? openAuditLog(cfg.audit.destination, loaded.dir, 'stderr') : { logger: createLogger('info', lineWriter(req.warn)), close: () => undefined };
    auditLog.logger.level = 'info';
    const service = new ApiTokenService({ store, config: cfg, audit: auditLog.logger });
    try {
      return await service.createToken({ user: req.user, name, ttlMs, scopes }, { method: 'admin-cli' });
    } finally {
      service.close();
      auditLog.close();
    }
  } finally {
    await store.close();
  }
}
