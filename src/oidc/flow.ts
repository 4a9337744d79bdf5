// Sign-in flows in progress (issue 10): one store record per `state`, single use (taken
// atomically), 10 minutes, bound to the browser that started it through a flow cookie
// (SameSite=Lax, so the provider's top-level redirect back carries it). Several tabs may sign in
// at once: each has its own state, all under the browser's one flow cookie. Bounded: at most
// MAX_FLOWS_PER_ADDRESS flows started per client address per lifetime window.
import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Store } from '../store/types.js';
import { safeEqual } from '../util/secure.js';
import type { LoginFlow } from './types.js';

export const FLOW_COOKIE = 'authgate_oidc_flow';
export const FLOW_TTL_MS = 10 * 60_000;
const MAX_FLOWS_PER_ADDRESS = 60;
const STATE_RE = /^[A-Za-z0-9_-]{16,128}$/;

const flowKey = (state: string): string => `oidc:flow:${createHash('sha256').update(state).digest('base64url')}`;
const bindingOf = (cookie: string): string => createHash('sha256').update(cookie).digest('base64url');

export function newFlowCookie(): string {
  return randomBytes(32).toString('base64url');
}

export type FlowStart = { ok: true; flow: LoginFlow } | { ok: false; reason: 'too_many' };

export async function startFlow(store: Store, provider: string, rd: string, browserCookie: string, ip: string): Promise<FlowStart> {
  const started = await store.incr(`oidc:flows:${ip}`, FLOW_TTL_MS);
  if (started > MAX_FLOWS_PER_ADDRESS) return { ok: false, reason: 'too_many' };
  const flow: LoginFlow = {
    provider,
    state: client.randomState(),
    nonce: client.randomNonce(),
    codeVerifier: client.randomPKCECodeVerifier(),
    rd,
    binding: bindingOf(browserCookie),
    createdAt: Date.now(),
  };
  await store.set(flowKey(flow.state), JSON.stringify(flow), FLOW_TTL_MS);
  return { ok: true, flow };
}

export type FlowTake =
  | { ok: true; flow: LoginFlow }
  /** No such flow: never started, already used, or expired. */
  | { ok: false; reason: 'unknown' }
  /** The flow exists but another browser (or provider) started it; it is spent either way. */
  | { ok: false; reason: 'foreign' };

/** Takes (and so spends) the flow of a callback's `state`. */
export async function takeFlow(store: Store, state: string | null, provider: string, browserCookie: string | undefined): Promise<FlowTake> {
  if (state === null || !STATE_RE.test(state)) return { ok: false, reason: 'unknown' };
  const json = await store.take(flowKey(state));
  if (json === null) return { ok: false, reason: 'unknown' };
  let flow: LoginFlow;
  try {
    flow = JSON.parse(json) as LoginFlow;
  } catch {
    return { ok: false, reason: 'unknown' };
  }
  if (Date.now() - flow.createdAt > FLOW_TTL_MS || flow.state !== state) return { ok: false, reason: 'unknown' };
  if (flow.provider !== provider || browserCookie === undefined || !safeEqual(flow.binding, bindingOf(browserCookie))) return { ok: false, reason: 'foreign' };
  return { ok: true, flow };
}
