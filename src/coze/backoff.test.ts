import { describe, expect, it } from "vitest";
import { backoffDelay } from "./backoff.js";

describe("backoffDelay", () => {
  it("doubles from the initial delay and stops at the cap", () => {
    const noJitter = { initialMs: 100, maxMs: 1_000, jitter: 0 };
    expect([0, 1, 2, 3, 4, 40].map((a) => backoffDelay(a, noJitter))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it("takes at most the jitter fraction off each delay", () => {
    const opts = { initialMs: 1_000, maxMs: 1_000, jitter: 0.25 };
    expect(backoffDelay(0, opts, () => 0)).toBe(1_000);
    expect(backoffDelay(0, opts, () => 0.999_999)).toBe(750);
  });
});
