/**
 * Waits `ms` real milliseconds. Resolves `true` when the time is up and `false` as soon as
 * `signal` aborts, so callers can stop without try/catch. The global `setTimeout` is read at call
 * time, so vitest's fake timers control it too.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Waits until the emulator clock reaches `deadlineMs`, checking every few real milliseconds (the
 * clock may be injected and move by itself). Calls `onTick` every `tickMs` real ms while waiting
 * (workflow PINGs); stops early when `onTick` returns `false`. Resolves `false` when `signal`
 * aborts or `onTick` gave up.
 */
export async function waitForClock(
  now: () => number,
  deadlineMs: number,
  signal: AbortSignal,
  tick?: { everyMs: number; onTick: () => Promise<boolean> },
): Promise<boolean> {
  let nextTick = tick ? Date.now() + tick.everyMs : Number.POSITIVE_INFINITY;
  while (now() < deadlineMs) {
    const step = Math.max(1, Math.min(deadlineMs - now(), 20, Math.max(0, nextTick - Date.now())));
    if (!(await sleep(step, signal))) return false;
    if (tick && Date.now() >= nextTick && now() < deadlineMs) {
      if (!(await tick.onTick())) return false;
      nextTick = Date.now() + tick.everyMs;
    }
  }
  return !signal.aborted;
}
