import { errors as undiciErrors } from "undici";
import { describe, expect, it } from "vitest";
import { CozeError } from "./errors.js";
import { createRetryBudget, isRetryable, retryDelay, wasNotSent } from "./retry.js";

const error = (
  code: CozeError["code"],
  extra: Partial<{ cause: unknown; retryAfterMs: number; step: string }> = {},
) =>
  new CozeError(code, "x", {
    step: extra.step ?? "chat.retrieve",
    cause: extra.cause,
    retryAfterMs: extra.retryAfterMs,
  });

describe("what is retried", () => {
  it("retries reads on 429, 5xx, resets and timeouts, but never their refusals", () => {
    for (const code of ["unavailable", "rate_limited", "timeout"] as const) {
      expect(isRetryable(error(code), true)).toBe(true);
    }
    for (const code of [
      "bad_request",
      "not_found",
      "permission",
      "failed",
      "protocol",
      "canceled",
      "quota_exceeded",
      "balance_insufficient",
      "plan_required",
    ] as const) {
      expect(isRetryable(error(code), true)).toBe(false);
    }
  });

  it("never retries a write that may have reached Coze, even on 503 or a reset", () => {
    expect(isRetryable(error("unavailable"), false)).toBe(false);
    expect(
      isRetryable(
        error("unavailable", { cause: new undiciErrors.SocketError("other side closed") }),
        false,
      ),
    ).toBe(false);
    expect(isRetryable(error("rate_limited"), false)).toBe(false);
  });

  it("retries any call whose connection failed before the request was sent", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), {
      code: "ECONNREFUSED",
    });
    expect(wasNotSent(error("unavailable", { cause: refused }))).toBe(true);
    expect(isRetryable(error("unavailable", { cause: refused }), false)).toBe(true);
    expect(
      isRetryable(error("timeout", { cause: new undiciErrors.ConnectTimeoutError() }), false),
    ).toBe(true);
  });

  it("never sends a quota, balance or plan refusal again, even one whose request never left", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), {
      code: "ECONNREFUSED",
    });
    for (const code of ["quota_exceeded", "balance_insufficient", "plan_required"] as const) {
      expect(isRetryable(error(code, { cause: refused }), true)).toBe(false);
    }
  });

  it("leaves token failures to the token cache's own backoff", () => {
    expect(isRetryable(error("unavailable", { step: "token" }), true)).toBe(false);
  });
});

describe("retryDelay", () => {
  const policy = { backoff: { initialMs: 100, maxMs: 1_000, jitter: 0 }, maxRetryAfterMs: 5_000 };
  it("backs off exponentially", () => {
    expect([0, 1, 2, 5].map((n) => retryDelay(n, error("unavailable"), policy))).toEqual([
      100, 200, 400, 1_000,
    ]);
  });
  it("waits for Retry-After when it is longer, and gives up when it is longer than allowed", () => {
    expect(retryDelay(0, error("rate_limited", { retryAfterMs: 3_000 }), policy)).toBe(3_000);
    expect(retryDelay(3, error("rate_limited", { retryAfterMs: 10 }), policy)).toBe(800);
    expect(retryDelay(0, error("rate_limited", { retryAfterMs: 6_000 }), policy)).toBeUndefined();
  });
});

describe("retry budget", () => {
  it("allows the reserve, then one retry per 1/ratio calls", () => {
    const budget = createRetryBudget({ ratio: 0.25, reserve: 2 });
    expect([budget.withdraw(), budget.withdraw(), budget.withdraw()]).toEqual([true, true, false]);
    for (let i = 0; i < 3; i++) budget.deposit();
    expect(budget.withdraw()).toBe(false);
    budget.deposit();
    expect(budget.withdraw()).toBe(true);
  });
});
