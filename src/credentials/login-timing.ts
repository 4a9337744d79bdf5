// Equal answer times for failed password checks (THREATS 26, issue 9.10). A users file may mix
// hash formats (SPEC 3.1): a pbkdf2 user answers in 150 ms, an argon2 user in 30 ms, a bcrypt
// user with a > 72-byte password at once. So a failed check for an unknown user burns a dummy
// of the directory's slowest hash shape, and every failed check is then padded (a timer, no CPU)
// to the time that slowest shape takes: unknown, wrong and disabled all answer alike.
//
// Costs are measured, not guessed: each shape the directory holds is timed once off the request
// path (a real check of its hash with a random password), then followed by every full check.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import type { UserDirectory } from '../context.js';
import { hashShape, verifyPassword } from './passwords.js';

/** Weight of a new measurement in a shape's moving average. */
const ALPHA = 0.2;
/** A hostile or broken measurement never holds answers longer than this. */
const MAX_PAD_MS = 2_000;
/** Distinct cost shapes remembered per directory (a real directory has a handful). */
const MAX_SHAPES = 32;

interface ShapeCost {
  /** A real hash of this shape: the model for unknown users' dummy hash. */
  readonly like: string;
  ms: number;
}

export class LoginTiming {
  readonly #costs = new LRUCache<string, ShapeCost>({ max: MAX_SHAPES });
  #primed: readonly string[] | undefined;

  /** A full hash check of `encoded` took `ms`. */
  observe(encoded: string, ms: number): void {
    const shape = hashShape(encoded);
    if (shape === undefined || !Number.isFinite(ms) || ms < 0) return;
    const cost = this.#costs.get(shape);
    if (cost === undefined) this.#costs.set(shape, { like: encoded, ms });
    else cost.ms += ALPHA * (ms - cost.ms);
  }

  /**
   * Times each hash shape the directory lists (once per list: a reload brings a new one), in the
   * background; until a shape is measured, answers are padded to what is known.
   */
  prime(directory: UserDirectory): void {
    const shapes = directory.hashShapes?.();
    if (shapes === undefined || shapes === this.#primed) return;
    this.#primed = shapes;
    for (const encoded of shapes) {
      const shape = hashShape(encoded);
      if (shape === undefined || this.#costs.has(shape)) continue;
      const started = performance.now();
      verifyPassword(randomBytes(18).toString('base64url'), encoded)
        .then(() => this.observe(encoded, performance.now() - started))
        .catch(() => undefined);
    }
  }

  /** A real hash of the slowest measured shape (what an unknown user's dummy imitates). */
  slowestLike(): string | undefined {
    let slowest: ShapeCost | undefined;
    for (const cost of this.#costs.values()) if (slowest === undefined || cost.ms > slowest.ms) slowest = cost;
    return slowest?.like;
  }

  /** How long every failed check should take (ms). */
  targetMs(): number {
    let max = 0;
    for (const cost of this.#costs.values()) max = Math.max(max, cost.ms);
    return Math.min(max, MAX_PAD_MS);
  }

  /** Waits until `startedAt` (performance.now()) is `targetMs` ago. */
  async pad(startedAt: number): Promise<void> {
    const left = this.targetMs() - (performance.now() - startedAt);
    if (left >= 1) await sleep(left);
  }
}

const timings = new WeakMap<UserDirectory, LoginTiming>();

/** The timing model of one user directory (one per loaded config). */
export function loginTiming(directory: UserDirectory): LoginTiming {
  let timing = timings.get(directory);
  if (timing === undefined) {
    timing = new LoginTiming();
    timings.set(directory, timing);
  }
  timing.prime(directory);
  return timing;
}
