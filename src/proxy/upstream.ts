// Upstream targets of a route: round-robin over a list, with passive health — a target that
// refuses connections is skipped for a while (all targets down: try them anyway).
export interface UpstreamTarget {
  readonly origin: string;
  /** host[:port] of the origin: the Host header the upstream receives. */
  readonly host: string;
  /** Path of the upstream URL without a trailing slash ('' for none); prepended to the request path. */
  readonly basePath: string;
  downUntil: number;
}

export class UpstreamPool {
  readonly targets: readonly UpstreamTarget[];
  private next = 0;
  private readonly cooldownMs: number;

  constructor(urls: string | readonly string[], cooldownMs = 10_000) {
    const list = typeof urls === 'string' ? [urls] : urls;
    this.targets = list.map((u) => {
      const url = new URL(u);
      const basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
      return { origin: url.origin, host: url.host, basePath, downUntil: 0 };
    });
    this.cooldownMs = cooldownMs;
  }

  /** The next healthy target (round-robin). */
  pick(now: number): UpstreamTarget {
    const t = this.targets;
    if (t.length === 1) return t[0] as UpstreamTarget;
    for (let i = 0; i < t.length; i++) {
      const target = t[this.next++ % t.length] as UpstreamTarget;
      if (target.downUntil <= now) return target;
    }
    return t[this.next++ % t.length] as UpstreamTarget;
  }

  markDown(target: UpstreamTarget, now: number): void {
    target.downUntil = now + this.cooldownMs;
  }

  /** For /readyz: healthy when at least one target is not marked down. */
  healthy(now: number): boolean {
    return this.targets.some((t) => t.downUntil <= now);
  }
}

/** Connection-level failures after which nothing reached the upstream: safe to mark down. */
export function isConnectFailure(err: unknown): boolean {
  let e = err as { code?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return true;
    e = e.cause as typeof e;
  }
  return false;
}

export function isTimeout(err: unknown): boolean {
  let e = err as { code?: string; name?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || e.name === 'TimeoutError') return true;
    e = e.cause as typeof e;
  }
  return false;
}
