import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import { CozeError, type CozeErrorCode, safeMessage } from "./errors.js";
import { type PollOptions, type PollTick, pollToEnd, pollUntil } from "./poll.js";

const step = "workflow.history";
// A start far from 0, so that elapsed times are visibly relative to it.
const start = 1_730_174_063_000;

type Status = "Running" | "Success" | "Fail";
const isDone = (status: Status) => status !== "Running";

const cozeError = (code: CozeErrorCode, retryAfterMs?: number) =>
  new CozeError(code, safeMessage(code, step), { step, retryAfterMs });

/**
 * A fake `fetchOnce` that records when it was called and with which signal. `script[i]` answers
 * call i (the last entry answers every later call): a status, an error to throw, or a function.
 */
function fakeFetch(
  clock: ManualClock,
  script: (Status | Error | ((signal: AbortSignal | undefined) => Promise<Status>))[],
) {
  const calls: number[] = [];
  const signals: (AbortSignal | undefined)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fetchOnce = async (signal: AbortSignal | undefined): Promise<Status> => {
    const answer = script[Math.min(calls.length, script.length - 1)];
    calls.push(clock.now());
    signals.push(signal);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (answer instanceof Error) throw answer;
      if (typeof answer === "function") return await answer(signal);
      return answer ?? "Running";
    } finally {
      inFlight--;
    }
  };
  return { fetchOnce, calls, signals, maxInFlight: () => maxInFlight };
}

/** Follows a promise without awaiting it, noting when (clock time) and how it settled. */
function track<T>(clock: ManualClock, promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown; at?: number } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value, at: clock.now() }),
    (error: unknown) => Object.assign(state, { settled: true, error, at: clock.now() }),
  );
  return state;
}

/** Lets pending microtasks run without moving the clock. */
const flush = (clock: ManualClock) => clock.advance(0);

function expectCozeError(error: unknown, code: CozeErrorCode, message: string): CozeError {
  expect(error).toBeInstanceOf(CozeError);
  expect(error).toMatchObject({ code, step, message });
  return error as CozeError;
}

describe("pollUntil timing", () => {
  it("waits the first intervals, then the interval, and yields every status with the elapsed time", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running", "Running", "Success"]);
    const ticks: PollTick<Status>[] = [];
    const consumer = track(
      clock,
      (async () => {
        const gen = pollUntil(fake.fetchOnce, isDone, {
          step,
          clock,
          firstIntervalsMs: [500, 1_000],
          deadlineMs: 60_000,
        });
        for (;;) {
          const next = await gen.next();
          if (next.done) return next.value;
          ticks.push(next.value);
        }
      })(),
    );

    await flush(clock);
    expect(fake.calls).toEqual([]); // the run was just started: no poll at once
    await clock.advance(10_000);
    expect(fake.calls.map((t) => t - start)).toEqual([500, 1_500, 3_500]);
    expect(ticks).toEqual([
      { value: "Running", poll: 1, elapsedMs: 500, done: false },
      { value: "Running", poll: 2, elapsedMs: 1_500, done: false },
      { value: "Success", poll: 3, elapsedMs: 3_500, done: true },
    ]);
    expect(consumer).toMatchObject({ settled: true, value: "Success", at: start + 3_500 });
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("pollToEnd returns the done value", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running", "Fail"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, intervalMs: 1_000 }));
    await clock.advance(5_000);
    expect(run).toMatchObject({ settled: true, value: "Fail", at: start + 2_000 });
    expect(fake.calls).toHaveLength(2);
  });

  it("gives up after exactly 150 polls at the default interval, at 300 s, without another request, saying the work is still running", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock }));
    await clock.advance(400_000);
    expect(fake.calls).toHaveLength(150);
    expect(fake.calls[0]).toBe(start + 2_000);
    expect(fake.calls[149]).toBe(start + 300_000);
    expect(fake.calls.every((t, i) => t === start + 2_000 * (i + 1))).toBe(true);
    expect(run.at).toBe(start + 300_000);
    expectCozeError(run.error, "still_running", "workflow.history: still running");
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("honours maxPolls", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, { step, clock, intervalMs: 100, maxPolls: 3 }),
    );
    await clock.advance(10_000);
    expect(fake.calls.map((t) => t - start)).toEqual([100, 200, 300]);
    expect(run.at).toBe(start + 300);
    expectCozeError(run.error, "still_running", "workflow.history: still running");
  });

  it("gives up at once when the next wait would reach the deadline, saying the work is still running", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 9_000 }));
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 4_000, 6_000, 8_000]);
    expect(run.at).toBe(start + 8_000); // not 10 000: it does not wait to find out
    expectCozeError(run.error, "still_running", "workflow.history: still running");
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("does not poll when the deadline leaves no time for a request at the poll time", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 4_000 }));
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000]);
    expect(run.at).toBe(start + 2_000);
    expectCozeError(run.error, "still_running", "workflow.history: still running");
  });

  it("times out when the deadline comes before any poll answered", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 1_000 }));
    await clock.advance(60_000);
    expect(fake.calls).toHaveLength(0);
    expectCozeError(run.error, "timeout", "workflow.history: timed out");
  });

  it("aborts a request still under way when the deadline passes", async () => {
    const clock = createManualClock(start);
    // A request that never answers and ignores its signal.
    const fake = fakeFetch(clock, [() => new Promise<Status>(() => {})]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 5_000 }));
    await clock.advance(4_999);
    expect(run.settled).toBe(false);
    await clock.advance(10_000);
    expect(run.at).toBe(start + 5_000);
    expectCozeError(run.error, "timeout", "workflow.history: timed out");
    expect(fake.calls).toHaveLength(1);
    expect(fake.signals[0]?.aborted).toBe(true);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("never has more than one request in flight and counts the interval from the end of a poll", async () => {
    const clock = createManualClock(start);
    // Each request takes 700 ms of clock time.
    const slow = async (signal: AbortSignal | undefined): Promise<Status> => {
      await clock.sleep(700, signal);
      return "Running";
    };
    const slowDone = async (signal: AbortSignal | undefined): Promise<Status> => {
      await slow(signal);
      return "Success";
    };
    const fake = fakeFetch(clock, [slow, slow, slowDone]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 60_000 }),
    );
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 4_700, 7_400]);
    expect(fake.maxInFlight()).toBe(1);
    expect(run).toMatchObject({ value: "Success", at: start + 8_100 });
    expect(clock.pendingSleeps()).toBe(0);
  });
});

describe("pollUntil retries", () => {
  const noJitter = () => 0;

  it("retries transient errors with backoff within one poll", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, [cozeError("unavailable"), cozeError("timeout"), "Success"]);
    const ticks: PollTick<Status>[] = [];
    const run = track(
      clock,
      (async () => {
        for await (const tick of pollUntil(fake.fetchOnce, isDone, {
          step,
          clock,
          random: noJitter,
        })) {
          ticks.push(tick);
        }
      })(),
    );
    await clock.advance(60_000);
    // 500 then 1 000 ms of backoff (initial 500, doubling), counted as one poll.
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 2_500, 3_500]);
    expect(ticks).toEqual([{ value: "Success", poll: 1, elapsedMs: 3_500, done: true }]);
    expect(run.settled).toBe(true);
  });

  it("applies jitter and caps the backoff at maxMs", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, [cozeError("unavailable")]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, {
        step,
        clock,
        random: () => 0.5,
        retry: { maxAttempts: 4, backoff: { initialMs: 1_000, maxMs: 1_500, jitter: 0.2 } },
      }),
    );
    await clock.advance(60_000);
    // 1 000 × 0.9, then min(2 000, 1 500) × 0.9 twice.
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 2_900, 4_250, 5_600]);
    expect(run.settled).toBe(true);
  });

  it("propagates the last transient error once maxAttempts attempts failed", async () => {
    const clock = createManualClock(start);
    const errors = [cozeError("unavailable"), cozeError("rate_limited"), cozeError("unavailable")];
    const fake = fakeFetch(clock, [...errors, "Success"]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, {
        step,
        clock,
        random: noJitter,
        retry: { maxAttempts: 3 },
      }),
    );
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 2_500, 3_500]);
    expect(run.error).toBe(errors[2]);
    expect(run.at).toBe(start + 3_500);
  });

  it("counts attempts per poll, not per run", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, [
      cozeError("unavailable"),
      "Running",
      cozeError("unavailable"),
      "Success",
    ]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, {
        step,
        clock,
        random: noJitter,
        maxPolls: 2,
        retry: { maxAttempts: 2 },
      }),
    );
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 2_500, 4_500, 5_000]);
    expect(run.value).toBe("Success");
  });

  it("waits retryAfterMs when it is longer than the backoff, and the backoff otherwise", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, [
      cozeError("rate_limited", 5_000),
      cozeError("rate_limited", 100),
      "Success",
    ]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, random: noJitter }));
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 7_000, 8_000]);
    expect(run.value).toBe("Success");
  });

  it("propagates any other error at once", async () => {
    for (const error of [cozeError("bad_request"), cozeError("not_found"), new TypeError("bug")]) {
      const clock = createManualClock(start);
      const fake = fakeFetch(clock, [error, "Success"]);
      const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock }));
      await clock.advance(60_000);
      expect(fake.calls).toHaveLength(1);
      expect(run.error).toBe(error);
      expect(run.at).toBe(start + 2_000);
    }
  });

  it("gives up when a retry wait would reach the deadline, keeping the error as the cause", async () => {
    const clock = createManualClock(start);
    const error = cozeError("rate_limited", 5_000);
    const fake = fakeFetch(clock, [error, "Success"]);
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, deadlineMs: 6_000 }));
    await clock.advance(60_000);
    expect(fake.calls).toHaveLength(1);
    expect(run.at).toBe(start + 2_000);
    expect(expectCozeError(run.error, "timeout", "workflow.history: timed out").cause).toBe(error);
  });
});

describe("pollUntil cancellation", () => {
  it("fails with canceled without any request when the signal is already aborted", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Success"]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, { step, clock, signal: AbortSignal.abort() }),
    );
    await clock.advance(60_000);
    expectCozeError(run.error, "canceled", "workflow.history: canceled");
    expect(run.at).toBe(start);
    expect(fake.calls).toEqual([]);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("stops at once when aborted during a wait, leaving no timer", async () => {
    const clock = createManualClock(start);
    const controller = new AbortController();
    const fake = fakeFetch(clock, ["Running"]);
    const options: PollOptions = { step, clock, signal: controller.signal, deadlineMs: 60_000 };
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, options));
    await clock.advance(5_000); // polls at 2 000 and 4 000, then waits
    expect(clock.pendingSleeps()).toBe(1);
    controller.abort();
    await flush(clock);
    expectCozeError(run.error, "canceled", "workflow.history: canceled");
    expect(run.at).toBe(start + 5_000);
    expect(clock.pendingSleeps()).toBe(0);
    await clock.advance(60_000);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 4_000]);
  });

  it("stops at once when aborted during a request, even one that ignores its signal", async () => {
    const clock = createManualClock(start);
    const controller = new AbortController();
    const fake = fakeFetch(clock, [() => new Promise<Status>(() => {})]);
    const options: PollOptions = { step, clock, signal: controller.signal, deadlineMs: 60_000 };
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, options));
    await clock.advance(3_000);
    expect(fake.calls).toHaveLength(1);
    expect(clock.pendingSleeps()).toBe(1); // the deadline timer of the request
    controller.abort();
    await flush(clock);
    expectCozeError(run.error, "canceled", "workflow.history: canceled");
    expect(fake.signals[0]?.aborted).toBe(true);
    expect(clock.pendingSleeps()).toBe(0);
    await clock.advance(60_000);
    expect(fake.calls).toHaveLength(1);
  });

  it("reports canceled, not the request's own error, when the request fails because of the abort", async () => {
    const clock = createManualClock(start);
    const controller = new AbortController();
    const abortable = (signal: AbortSignal | undefined) =>
      new Promise<Status>((_, reject) => {
        signal?.addEventListener("abort", () => reject(cozeError("unavailable")));
      });
    const fake = fakeFetch(clock, [abortable]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, { step, clock, signal: controller.signal }),
    );
    await clock.advance(2_000);
    controller.abort();
    await clock.advance(60_000);
    expectCozeError(run.error, "canceled", "workflow.history: canceled");
    expect(fake.calls).toHaveLength(1);
  });

  it("stops at once when aborted during a retry wait", async () => {
    const clock = createManualClock(start);
    const controller = new AbortController();
    const fake = fakeFetch(clock, [cozeError("unavailable")]);
    const run = track(
      clock,
      pollToEnd(fake.fetchOnce, isDone, {
        step,
        clock,
        signal: controller.signal,
        random: () => 0,
      }),
    );
    await clock.advance(2_200);
    expect(fake.calls).toHaveLength(1);
    controller.abort();
    await flush(clock);
    expectCozeError(run.error, "canceled", "workflow.history: canceled");
    expect(clock.pendingSleeps()).toBe(0);
    await clock.advance(60_000);
    expect(fake.calls).toHaveLength(1);
  });

  it("keeps the meaning of the abort reason, as fromTransportError does", async () => {
    const clock = createManualClock(start);
    const shutdown = new CozeError("unavailable", "server shutting down", { step: "server" });
    for (const [reason, code] of [
      [new DOMException("deadline", "TimeoutError"), "timeout"],
      [shutdown, "unavailable"],
    ] as const) {
      const fake = fakeFetch(clock, ["Running"]);
      const signal = AbortSignal.abort(reason);
      const run = track(clock, pollToEnd(fake.fetchOnce, isDone, { step, clock, signal }));
      await flush(clock);
      expect(run.error).toMatchObject({ code });
      expect(fake.calls).toEqual([]);
    }
  });

  it("leaves no listener on the caller's signal, which may outlive many polls", async () => {
    const clock = createManualClock(start);
    const controller = new AbortController();
    const fake = fakeFetch(clock, [cozeError("unavailable"), "Running", "Running", "Success"]);
    const options: PollOptions = { step, clock, signal: controller.signal, deadlineMs: 60_000 };
    const run = track(clock, pollToEnd(fake.fetchOnce, isDone, options));
    await clock.advance(1_000);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1); // the wait's
    await clock.advance(60_000);
    expect(run.value).toBe("Success");
    expect(fake.calls).toHaveLength(4);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("makes no further request once the consumer stops iterating", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Running"]);
    const seen: number[] = [];
    const consumer = track(
      clock,
      (async () => {
        for await (const tick of pollUntil(fake.fetchOnce, isDone, {
          step,
          clock,
          deadlineMs: 60_000,
        })) {
          seen.push(tick.poll);
          if (tick.poll === 2) break;
        }
      })(),
    );
    await clock.advance(60_000);
    expect(consumer.settled).toBe(true);
    expect(seen).toEqual([1, 2]);
    expect(fake.calls.map((t) => t - start)).toEqual([2_000, 4_000]);
    expect(clock.pendingSleeps()).toBe(0);
  });
});

describe("pollUntil options", () => {
  it("rejects options out of range before any request", async () => {
    const clock = createManualClock(start);
    const fake = fakeFetch(clock, ["Success"]);
    for (const bad of [
      { maxPolls: 0 },
      { maxPolls: 1.5 },
      { intervalMs: -1 },
      { firstIntervalsMs: [100, Number.NaN] },
      { deadlineMs: -5 },
      { retry: { maxAttempts: 0 } },
    ]) {
      await expect(pollToEnd(fake.fetchOnce, isDone, { step, clock, ...bad })).rejects.toThrow(
        RangeError,
      );
    }
    expect(fake.calls).toEqual([]);
  });
});
