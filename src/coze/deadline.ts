import type { Clock } from "./clock.js";

/** A signal that aborts when the parent aborts or a deadline passes, and its cleanup. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Stops the timer and detaches from the parent. Call it when the guarded work is over. */
  dispose(): void;
}

/**
 * Combines an optional parent signal with an optional deadline of `ms` milliseconds measured on
 * `clock`. When the deadline passes the signal aborts with a `TimeoutError` DOMException, which
 * `fromTransportError` reports as `timeout`; a parent abort passes its reason through (so a
 * caller's cancel stays `canceled`).
 *
 * Unlike `AbortSignal.timeout` and `AbortSignal.any`, the timer runs on the injected clock (tests
 * move it) and both the timer and the parent listener are released by `dispose()`.
 */
export function createDeadline(
  clock: Clock,
  ms: number | undefined,
  parent?: AbortSignal,
): Deadline {
  const controller = new AbortController();
  const timer = new AbortController();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) {
    controller.abort(parent.reason);
  } else {
    parent?.addEventListener("abort", onParentAbort, { once: true });
    if (ms !== undefined && Number.isFinite(ms)) {
      clock.sleep(Math.max(0, ms), timer.signal).then(
        () => controller.abort(new DOMException("deadline exceeded", "TimeoutError")),
        () => {},
      );
    }
  }
  return {
    signal: controller.signal,
    dispose() {
      timer.abort();
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}
