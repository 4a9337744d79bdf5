// `authgate mfa reset --user NAME` (issue 11): an administrator removes every second factor of a
// user who lost their device — TOTP, recovery codes, WebAuthn credentials — straight in the
// configured store, and the user's sessions end. Audited as `mfa.removed` (method admin-cli).
import { loadConfig } from '../config/load.js';
import { createLogger } from '../ops/logger.js';
import { SessionService } from '../sessions/service.js';
import { createStore } from '../store/index.js';
import { MfaService } from './service.js';
import type { GatewayContext } from '../context.js';
import { createUserDirectory } from '../credentials/users.js';
import { createLockout } from '../credentials/lockout.js';

export interface CliMfaResetRequest {
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;
  readonly user: string;
  readonly warn: (message: string) => void;
  /** Where the audit line goes (one JSON line; the CLI sends it to stderr). */
  readonly audit: { write(line: string): void };
}

export async function resetMfaFromCli(req: CliMfaResetRequest): Promise<{ totp: boolean; webauthn: number; recoveryCodes: number; sessions: number }> {
  const loaded = await loadConfig(req.configFile, req.env);
  const cfg = loaded.config;
  if ((cfg.store?.driver ?? 'sqlite') === 'memory') throw new Error('the memory store keeps nothing between processes; configure sqlite or redis');
  const note = (_obj: object, msg?: string): void => {
    if (msg !== undefined) req.warn(msg);
  };
  const storeLog = { info: () => undefined, warn: note, error: note };
  const store = await createStore(cfg.store, { configDir: loaded.dir, log: storeLog });
  try {
    await store.ping();
    const users = await createUserDirectory(cfg, { configDir: loaded.dir, log: storeLog, store, watch: false });
    const log = createLogger('info', req.audit);
    const ctx = {
      config: cfg,
      configDir: loaded.dir,
      publicUrl: new URL(cfg.server?.publicUrl ?? 'http://127.0.0.1:8080'),
      prefix: cfg.server?.prefix ?? '/.auth',
      store,
      users,
      lockout: createLockout(store, cfg.login?.lockout),
      log,
    } as unknown as GatewayContext;
    const mfa = new MfaService(ctx);
    const sessions = new SessionService(ctx);
    try {
      const removed = await mfa.resetUser(req.user, { method: 'admin-cli' });
      // A session that passed the removed factors must not outlive them.
      const ended = await sessions.destroyUser(req.user);
      return { ...removed, sessions: ended };
    } finally {
      mfa.close();
      sessions.close();
      await users.close();
    }
  } finally {
    await store.close();
  }
}
