// Audit events (SPEC 7): one JSON line per security-relevant event, `"audit": true` and `event`,
// with who, from where, how and why. Never a secret: callers pass only the fields below.
import { resolve } from 'node:path';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import pino from 'pino';
import { createLogger } from './logger.js';

export type AuditEventName =
  | 'login.success'
  | 'login.failure'
  | 'lockout'
  | 'logout'
  | 'session.revoked'
  | 'mfa.enrolled'
  | 'mfa.removed'
  | 'mfa.failure'
  | 'token.created'
  | 'token.revoked'
  | 'jwt.family_revoked'
  | 'oidc.login'
  | 'oidc.backchannel_logout';

export interface AuditFields {
  readonly user?: string | undefined;
  /** Client address. */
  readonly ip?: string | undefined;
  /** How: password, basic, totp, oidc:<name>, admin-cli … */
  readonly method?: string | undefined;
  readonly route?: string | undefined;
  /** Why, as a problem code or a short word (invalid_credentials, expired, user_request …). */
  readonly reason?: string | undefined;
  /** A public handle (session handle, token id, family id): never the secret itself. */
  readonly id?: string | undefined;
}

/** Where audit lines go: the gateway's logger unless `audit.destination` names another stream. */
export interface AuditSink {
  readonly log: Pick<FastifyBaseLogger, 'info'>;
  readonly audit?: Pick<FastifyBaseLogger, 'info'> | undefined;
}

/** Where an action came from, for its audit event: client address, endpoint, how, why. */
export type AuditOrigin = Pick<AuditFields, 'ip' | 'route' | 'method' | 'reason'>;

export function audit(sink: AuditSink, event: AuditEventName, fields: AuditFields): void {
  const out = sink.audit ?? sink.log;
  const line: Record<string, unknown> = { audit: true, event };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = v;
  out.info(line, event);
}

/** The origin of an action taken through one of the gateway's endpoints. */
export function requestOrigin(request: Pick<FastifyRequest, 'ip' | 'routeOptions'>, extra: AuditOrigin = {}): AuditOrigin {
  return { ip: request.ip, route: request.routeOptions.url, ...extra };
}

/**
 * The stream `audit.destination` names (SPEC 7): `stdout`, `stderr` or a file (appended to,
 * relative to the config file, its folder created). Same redaction as the main log. Writes are
 * synchronous: audit events are rare, and a line must not be lost when the process stops.
 * `stdoutFallback` replaces `stdout` where stdout carries a result (the CLI prints a token there).
 */
export function openAuditLog(destination: string, configDir: string, stdoutFallback?: 'stderr'): { logger: pino.Logger; close: () => void } {
  const target = destination === 'stdout' ? (stdoutFallback === 'stderr' ? 2 : 1) : destination === 'stderr' ? 2 : resolve(configDir, destination);
  const stream = pino.destination({ dest: target, sync: true, mkdir: typeof target === 'string' });
  const logger = createLogger('info', stream);
  logger.level = 'info'; // not LOG_LEVEL: the audit trail is not a debugging aid
  return {
    logger,
    close: () => {
      if (typeof target === 'string') stream.end();
    },
  };
}
