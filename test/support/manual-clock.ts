import type { Clock } from "../../src/coze/clock.js";

/**
 * A {@link Clock} that only moves when a test moves it. Use it instead of real timers (or
 * vitest's fake timers) to drive code in `src/coze/` deterministically: start the code under test,
 * then `await clock.advance(ms)` and assert what happened at each clock time.
 */
export interface ManualClock extends Clock {
  /** The current clock time in milliseconds. Starts at `startMs` and only `advance` moves it. */
  now(): number;
  /**
   * Resolves once `advance` has moved the clock to `now() + ms` or beyond. A wait of 0 ms or less
   * resolves at once. Rejects with `signal.reason` as soon as `signal` aborts (at once when it is
   * already aborted); an aborted sleep no longer counts in {@link ManualClock.pendingSleeps}.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Moves the clock forward by `ms` milliseconds. Sleepers that fall due are woken one at a time,
   * in wake-time order (ties in the order they started sleeping), with the clock set to each one's
   * wake time, and the microtasks each wake-up causes run to completion before the next sleeper
   * wakes. So a sleep that a woken task starts, and that falls due within `ms`, wakes in the same
   * call. Resolves when the clock stands at the target and every microtask has settled.
   *
   * Only code that advances through promises settles: work waiting on real I/O or real timers does
   * not. Do not call `advance` again before the previous call resolved. Throws `RangeError` for a
   * negative or non-finite `ms`.
   */
  advance(ms: number): Promise<void>;
  /** How many sleeps are waiting: started, neither woken nor aborted. 0 means no timer is left. */
  pendingSleeps(): number;
}

interface Sleeper {
  readonly wakeAt: number;
  readonly seq: number;
  readonly wake: () => void;
}

// Captured at load so that a test which installs fake timers afterwards cannot stall `advance`.
const realSetImmediate = globalThis.setImmediate;

/** Resolves after the current macrotask turn, that is after every queued microtask has run. */
function settle(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

/**
 * Creates a {@link ManualClock} standing at `startMs` (milliseconds since the epoch; default 0).
 *
 * @example
 * const clock = createManualClock(0);
 * const done = clock.sleep(1_000).then(() => clock.now());
 * await clock.advance(1_500);
 * expect(await done).toBe(1_000);
 */
export function createManualClock(startMs = 0): ManualClock {
  let now = startMs;
  let seq = 0;
  const sleepers = new Set<Sleeper>();

  return {
    now: () => now,

    sleep(ms, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (!(ms > 0)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          sleepers.delete(sleeper);
          reject(signal?.reason);
        };
        const sleeper: Sleeper = {
          wakeAt: now + ms,
          seq: seq++,
          wake: () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          },
        };
        sleepers.add(sleeper);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },

    async advance(ms) {
      if (!(ms >= 0) || !Number.isFinite(ms)) {
        throw new RangeError(`advance needs a finite, non-negative ms, got ${ms}`);
      }
      const target = now + ms;
      await settle();
      for (;;) {
        let next: Sleeper | undefined;
        for (const s of sleepers) {
          if (s.wakeAt > target) continue;
          if (
            next === undefined ||
            s.wakeAt < next.wakeAt ||
            (s.wakeAt === next.wakeAt && s.seq < next.seq)
          ) {
            next = s;
          }
        }
        if (next === undefined) break;
        sleepers.delete(next);
        now = Math.max(now, next.wakeAt);
        next.wake();
        await settle();
      }
      now = target;
      await settle();
    },

    pendingSleeps: () => sleepers.size,
  };
}
