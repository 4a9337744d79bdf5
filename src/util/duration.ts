// The one duration parser: `30s`, `5m`, `12h`, `30d`, `250ms`, or a number of seconds.
import type { Duration } from '../config/schema.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/;

/** Milliseconds for a configured duration; throws on a malformed value (the schema prevents it). */
export function durationMs(value: Duration | undefined, fallback?: Duration): number {
  const v = value ?? fallback;
  if (v === undefined) throw new Error('duration missing');
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new Error(`invalid duration: ${v}`);
    return Math.round(v * 1000);
  }
  const m = DURATION_RE.exec(v.trim());
  if (!m) throw new Error(`invalid duration: ${v}`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] as string]!);
}

/** Parses CLI-style durations (`30d`), for `authgate token create --ttl`. */
export function parseDuration(text: string): number {
  const n = Number(text);
  return Number.isFinite(n) ? durationMs(n) : durationMs(text as Duration);
}
