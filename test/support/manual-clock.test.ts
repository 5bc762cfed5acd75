import { describe, expect, it } from "vitest";
import { createManualClock } from "./manual-clock.js";

describe("createManualClock", () => {
  it("starts at the given time and only moves when advanced", async () => {
    const clock = createManualClock(1_000);
    expect(clock.now()).toBe(1_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_250);
    expect(createManualClock().now()).toBe(0);
  });

  it("wakes a sleeper only once the clock reaches its wake time", async () => {
    const clock = createManualClock(0);
    let woke = false;
    void clock.sleep(1_000).then(() => {
      woke = true;
    });
    await clock.advance(999);
    expect(woke).toBe(false);
    expect(clock.pendingSleeps()).toBe(1);
    await clock.advance(1);
    expect(woke).toBe(true);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("wakes due sleepers in wake-time order, each at its own time, ties in start order", async () => {
    const clock = createManualClock(0);
    const log: string[] = [];
    const sleep = (name: string, ms: number) =>
      clock.sleep(ms).then(() => log.push(`${name}@${clock.now()}`));
    void sleep("c", 300);
    void sleep("a", 100);
    void sleep("b1", 200);
    void sleep("b2", 200);
    await clock.advance(1_000);
    expect(log).toEqual(["a@100", "b1@200", "b2@200", "c@300"]);
    expect(clock.now()).toBe(1_000);
  });

  it("wakes within the same advance a sleep started by a woken task", async () => {
    const clock = createManualClock(0);
    const times: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(400);
        // A few extra microtask hops, as real code has between two waits.
        await Promise.resolve();
        await Promise.resolve();
        times.push(clock.now());
      }
    };
    const done = loop();
    await clock.advance(1_000);
    expect(times).toEqual([400, 800]);
    await clock.advance(200);
    await done;
    expect(times).toEqual([400, 800, 1_200]);
  });

  it("resolves a sleep of 0 ms at once", async () => {
    const clock = createManualClock(0);
    await clock.sleep(0);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("rejects with the abort reason, at once or when the signal aborts, and forgets the sleeper", async () => {
    const clock = createManualClock(0);
    const reason = new Error("stop");
    await expect(clock.sleep(100, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(clock.pendingSleeps()).toBe(0);

    const controller = new AbortController();
    const sleeping = clock.sleep(100, controller.signal);
    expect(clock.pendingSleeps()).toBe(1);
    controller.abort(reason);
    await expect(sleeping).rejects.toBe(reason);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("refuses to go backwards", async () => {
    await expect(createManualClock(0).advance(-1)).rejects.toThrow(RangeError);
  });
});
