// What endpoints and the request pipeline share for one loaded config: the context, the built
// authenticators and the caller check used by the gateway's own endpoints (/me, /tokens, …).
import type { FastifyRequest } from 'fastify';
import type { GatewayContext } from './context.js';
import type { Authenticator, AuthOutcome, AuthRequest } from './pipeline/types.js';

export interface Runtime {
  readonly ctx: GatewayContext;
  /** Every configured authenticator by its config name. */
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  /**
   * Who is calling a gateway endpoint: the session cookie, a gateway API token or a gateway JWT
   * (SPEC 6, GET /me). NOT_MINE when the request carries none of them.
   */
  authenticateCaller(request: FastifyRequest): Promise<AuthOutcome>;
  /** The AuthRequest view of a request to a gateway endpoint. */
  toAuthRequest(request: FastifyRequest): AuthRequest;
  /** Register a cleanup to run when this runtime is replaced (reload) or the gateway stops. */
  onClose(fn: () => Promise<void> | void): void;
}
