// Runs a route's ordered authenticator chain (SPEC 4 step 4) and checks its requirements
// (step 5). This is the only place that decides between not-mine, identity and reject.
import type { RouteConfig } from '../config/schema.js';
import type { ErrorCode } from '../errors.js';
import { durationMs } from '../util/duration.js';
import type { Authenticator, AuthOutcome, AuthRequest, Identity, Rejected } from './types.js';

export type ChainResult =
  | { kind: 'identity'; identity: Identity; authenticator: Authenticator }
  | { kind: 'reject'; rejection: Rejected; authenticator: Authenticator }
  | { kind: 'unauthenticated' };

/**
 * Runs the chain; synchronous while the authenticators answer synchronously (cached credentials),
 * so a warm request allocates no promise here. The first authenticator that answers with a
 * promise continues the chain asynchronously.
 */
export function runChain(chain: readonly Authenticator[], request: AuthRequest, from = 0): ChainResult | Promise<ChainResult> {
  for (let i = from; i < chain.length; i++) {
    const authenticator = chain[i] as Authenticator;
    let r: AuthOutcome | Promise<AuthOutcome>;
    try {
      r = authenticator.authenticate(request);
    } catch (err) {
      return failed(authenticator, request, err);
    }
    if (r instanceof Promise) return r.then((outcome) => settle(chain, request, i, outcome), (err: unknown) => failed(authenticator, request, err));
    if (r.kind === 'not-mine') continue;
    if (r.kind === 'identity') return { kind: 'identity', identity: r.identity, authenticator };
    return { kind: 'reject', rejection: r, authenticator };
  }
  return UNAUTHENTICATED;
}

const UNAUTHENTICATED: ChainResult = Object.freeze({ kind: 'unauthenticated' });

function settle(chain: readonly Authenticator[], request: AuthRequest, i: number, outcome: AuthOutcome): ChainResult | Promise<ChainResult> {
  const authenticator = chain[i] as Authenticator;
  if (outcome.kind === 'not-mine') return runChain(chain, request, i + 1);
  if (outcome.kind === 'identity') return { kind: 'identity', identity: outcome.identity, authenticator };
  return { kind: 'reject', rejection: outcome, authenticator };
}

/** An authenticator that throws is a failure of the gateway, never a pass: fail closed. */
function failed(authenticator: Authenticator, request: AuthRequest, err: unknown): ChainResult {
  const code: ErrorCode = (err as { code?: unknown })?.code === 'store_unavailable' ? 'store_unavailable' : 'service_unavailable';
  request.log.error({ authenticator: authenticator.name, err: { message: (err as Error)?.message, name: (err as Error)?.name } }, 'authenticator failed');
  return { kind: 'reject', rejection: { kind: 'reject', code }, authenticator };
}

/** WWW-Authenticate values for a 401: the rejecting authenticator's, or every challenger's. */
export function challengesFor(chain: readonly Authenticator[], rejected?: { rejection: Rejected; authenticator: Authenticator }): string[] {
  if (rejected) {
    const c = rejected.authenticator.challenge?.(rejected.rejection);
    return c ? [c] : [];
  }
  const out: string[] = [];
  for (const a of chain) {
    const c = a.challenge?.();
    if (c && !out.includes(c)) out.push(c);
  }
  return out;
}

export interface CompiledRequirements {
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly mfa: boolean;
  readonly maxAgeSeconds?: number;
}

export function compileRequirements(req: RouteConfig['require']): CompiledRequirements | undefined {
  if (!req) return undefined;
  const out: { groups?: string[]; scopes?: string[]; mfa: boolean; maxAgeSeconds?: number } = { mfa: req.mfa === true };
  if (req.groups && req.groups.length > 0) out.groups = req.groups;
  if (req.scopes && req.scopes.length > 0) out.scopes = req.scopes;
  if (req.maxAge !== undefined) out.maxAgeSeconds = Math.floor(durationMs(req.maxAge) / 1000);
  if (!out.groups && !out.scopes && !out.mfa && out.maxAgeSeconds === undefined) return undefined;
  return out;
}

/** SPEC 4 step 5. Returns undefined when the identity may pass, else the problem code. */
export function authorize(identity: Identity, req: CompiledRequirements | undefined, nowSeconds: number): 'forbidden' | 'mfa_required' | 'reauth_required' | undefined {
  if (!req) return undefined;
  if (req.groups && !req.groups.some((g) => identity.groups.includes(g))) return 'forbidden';
  if (req.scopes && !req.scopes.every((s) => identity.scopes.includes(s))) return 'forbidden';
  if (req.mfa && !identity.mfa) return 'mfa_required';
  if (req.maxAgeSeconds !== undefined && !(identity.authTime > 0 && nowSeconds - identity.authTime <= req.maxAgeSeconds)) return 'reauth_required';
  return undefined;
}
