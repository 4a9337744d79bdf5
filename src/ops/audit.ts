// Audit events (SPEC 7): one JSON line per security-relevant event, `"audit": true` and `event`,
// with who, from where, how and why. Never a secret: callers pass only the fields below.
import type { FastifyBaseLogger } from 'fastify';

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
  readonly log: FastifyBaseLogger;
  readonly audit?: FastifyBaseLogger | undefined;
}

export function audit(sink: AuditSink, event: AuditEventName, fields: AuditFields): void {
  const out = sink.audit ?? sink.log;
  const line: Record<string, unknown> = { audit: true, event };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = v;
  out.info(line, event);
}
