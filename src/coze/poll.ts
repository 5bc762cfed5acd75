import { type BackoffOptions, backoffDelay } from "./backoff.js";
import type { Clock } from "./clock.js";
import { CozeError, fromTransportError, isCozeError, safeMessage } from "./errors.js";

/** Options for {@link pollUntil} and {@link pollToEnd}. Times are milliseconds of `clock`. */
export interface PollOptions {
  /** The upstream step, named in errors, such as `workflow.history` or `chat.retrieve`. */
  step: string;
  /** Where time and waits come from; tests pass a manual clock. */
  clock: Clock;
  /**
   * Wait between two polls, counted from the end of the previous poll. Default 2 000, the old
   * channel's value (the SDKs poll chats every 1 s in go and py, 100 ms in js, coze-api.md §4.4).
   */
  intervalMs?: number;
  /**
   * Most successful polls before giving up with `still_running`; retries of a failed request do
   * not count. Bounds the loop even without a deadline. Default 150 (5 minutes at the default
   * interval).
   */
  maxPolls?: number;
  /**
   * Waits before the first polls, in order, replacing `intervalMs` for them: `[500, 1000]` polls
   * 500 ms after the start, then 1 000 ms later, then every `intervalMs`. Default `[]`.
   */
  firstIntervalsMs?: readonly number[];
  /**
   * Overall deadline, counted from the first call to `next()`. No wait starts that would end at
   * or after it (the poller gives up with `timeout` at once instead), and a request still under
   * way when it passes is aborted. Default none.
   */
  deadlineMs?: number;
  /** Aborts polling: the poller fails with `canceled` at once, whatever it is doing. */
  signal?: AbortSignal;
  /** Retries of a request that failed with `unavailable`, `timeout` or `rate_limited`. */
  retry?: {
    /** Attempts per poll, the first included; 1 disables retries. Default 4. */
    maxAttempts?: number;
    /** Delays between attempts. Default initial 500, max 8 000, jitter 0.2. */
    backoff?: BackoffOptions;
  };
  /** Source of the backoff jitter, returning a value in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** One successful poll. */
export interface PollTick<T> {
  /** What `fetchOnce` returned. */
  value: T;
  /** 1 for the first successful poll, 2 for the next, … Retries do not count. */
  poll: number;
  /** Clock time since polling started, in milliseconds. */
  elapsedMs: number;
  /** Whether `isDone(value)` held; if so this is the last tick. */
  done: boolean;
}

// Errors worth another attempt of the same poll: Coze or the network may be fine a moment later
// (coze-api.md §1.5: code 5000 is an internal error, 4013/4020 rate limits). Polling reads state
// (run history §5.4, chat retrieve §4.4), so repeating a request is safe.
const transient = ["unavailable", "timeout", "rate_limited"] as const;

/** Thrown inside the poller when the deadline passes during a request; never escapes. */
class DeadlinePassed extends Error {}

/**
 * Polls `fetchOnce` until `isDone(value)` and yields every successful result, so a watcher can
 * stream status with the elapsed time; the generator returns the done value after yielding it.
 *
 * Waits `firstIntervalsMs[0] ?? intervalMs` before the first poll (the run was just started),
 * then the other `firstIntervalsMs`, then `intervalMs`, each counted from the end of the previous
 * poll (like the SDKs' sleep loops, coze-api.md §4.4). Never more than one request is in flight.
 * `fetchOnce` gets a signal that aborts on cancel or when the deadline passes; pass it on to the
 * request.
 *
 * Fails with:
 * - the error of `fetchOnce` when it is not transient (see {@link PollOptions.retry}), at once, or
 *   when a transient error persists for `maxAttempts` attempts. Between attempts it waits
 *   {@link backoffDelay}, or the error's `retryAfterMs` when that is longer.
 * - `CozeError("still_running")` (`<step>: still running`) after `maxPolls` polls that were not
 *   done, or when the wait before the next poll would reach the deadline after a poll that was
 *   not done, without another request: the work goes on upstream (issue 16).
 * - `CozeError("timeout")` (`<step>: timed out`) when the deadline comes before any poll
 *   answered, or passes during a request or a retry's wait.
 * - `CozeError("canceled")` as soon as `signal` aborts, before or during a wait or a request
 *   (`timeout` instead when the abort reason is a `TimeoutError`, and a `CozeError` reason as is,
 *   as `fromTransportError` does). No timer is left behind.
 * - `RangeError` for options out of range, before the first request.
 *
 * Stopping the iteration (`break`) stops polling at once: no further request is made.
 */
export async function* pollUntil<T>(
  fetchOnce: (signal: AbortSignal | undefined) => Promise<T>,
  isDone: (value: T) => boolean,
  options: PollOptions,
): AsyncGenerator<PollTick<T>, T, undefined> {
  const { step, clock, signal } = options;
  const intervalMs = options.intervalMs ?? 2_000;
  const maxPolls = options.maxPolls ?? 150;
  const firstIntervalsMs = options.firstIntervalsMs ?? [];
  const maxAttempts = options.retry?.maxAttempts ?? 4;
  const backoff: BackoffOptions = {
    initialMs: options.retry?.backoff?.initialMs ?? 500,
    maxMs: options.retry?.backoff?.maxMs ?? 8_000,
    jitter: options.retry?.backoff?.jitter,
  };
  const random = options.random ?? Math.random;
  checkOptions(intervalMs, maxPolls, firstIntervalsMs, maxAttempts, options.deadlineMs);

  const start = clock.now();
  const deadline =
    options.deadlineMs === undefined ? Number.POSITIVE_INFINITY : start + options.deadlineMs;

  const canceled = () => fromTransportError(step, signal?.reason, signal);
  const gaveUp = (cause: unknown) =>
    new CozeError("timeout", safeMessage("timeout", step), { step, cause });
  const stillRunning = (cause: unknown) =>
    new CozeError("still_running", safeMessage("still_running", step), { step, cause });

  /**
   * Waits `ms` unless that would reach the deadline; maps an abort to `canceled`. `running`:
   * the last poll said not done, so giving up here leaves the work running upstream.
   */
  const wait = async (ms: number, reason: () => unknown, running = false) => {
    if (clock.now() + ms >= deadline) throw (running ? stillRunning : gaveUp)(reason());
    try {
      await clock.sleep(ms, signal);
    } catch (err) {
      if (signal?.aborted) throw canceled();
      throw err;
    }
  };

  /** One request, bounded by the signal and the deadline. */
  const attempt = async (): Promise<T> => {
    if (signal?.aborted) throw canceled();
    // A slow clock wake-up can land on the deadline: no request starts without time left.
    if (clock.now() >= deadline) throw gaveUp(new Error("deadline passed before a request"));
    const request = new AbortController();
    const timer = new AbortController();
    const onAbort = () => request.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (deadline !== Number.POSITIVE_INFINITY) {
      clock.sleep(deadline - clock.now(), timer.signal).then(
        () => request.abort(new DeadlinePassed("deadline passed during a request")),
        () => {},
      );
    }
    try {
      return await untilAborted(fetchOnce(request.signal), request.signal);
    } catch (err) {
      // Whatever the request threw after an abort, the abort is what happened.
      if (signal?.aborted) throw canceled();
      if (request.signal.aborted && request.signal.reason instanceof DeadlinePassed) {
        throw gaveUp(request.signal.reason);
      }
      throw err;
    } finally {
      timer.abort();
      signal?.removeEventListener("abort", onAbort);
    }
  };

  for (let poll = 1; poll <= maxPolls; poll++) {
    if (signal?.aborted) throw canceled();
    await wait(
      firstIntervalsMs[poll - 1] ?? intervalMs,
      () => new Error(`deadline before poll ${poll}`),
      poll > 1,
    );
    let value: T;
    for (let attemptNo = 1; ; attemptNo++) {
      try {
        value = await attempt();
        break;
      } catch (err) {
        if (attemptNo >= maxAttempts || !isCozeError(err, ...transient)) throw err;
        const delay = Math.max(backoffDelay(attemptNo - 1, backoff, random), err.retryAfterMs ?? 0);
        await wait(delay, () => err);
      }
    }
    const done = isDone(value);
    yield { value, poll, elapsedMs: clock.now() - start, done };
    if (done) return value;
  }
  if (signal?.aborted) throw canceled();
  throw stillRunning(new Error(`not done after ${maxPolls} polls`));
}

/**
 * Runs {@link pollUntil} to the end and returns the done value. Fails as `pollUntil` does.
 */
export async function pollToEnd<T>(
  fetchOnce: (signal: AbortSignal | undefined) => Promise<T>,
  isDone: (value: T) => boolean,
  options: PollOptions,
): Promise<T> {
  const ticks = pollUntil(fetchOnce, isDone, options);
  for (;;) {
    const next = await ticks.next();
    if (next.done) return next.value;
  }
}

/** Settles like `promise`, or rejects with `signal.reason` as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function checkOptions(
  intervalMs: number,
  maxPolls: number,
  firstIntervalsMs: readonly number[],
  maxAttempts: number,
  deadlineMs: number | undefined,
): void {
  const isWait = (ms: number) => Number.isFinite(ms) && ms >= 0;
  if (!isWait(intervalMs) || !firstIntervalsMs.every(isWait)) {
    throw new RangeError("poll intervals must be finite and not negative");
  }
  if (!Number.isInteger(maxPolls) || maxPolls < 1) throw new RangeError("maxPolls must be ≥ 1");
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError("retry.maxAttempts must be ≥ 1");
  }
  if (deadlineMs !== undefined && !(deadlineMs >= 0)) {
    throw new RangeError("deadlineMs must not be negative");
  }
}
