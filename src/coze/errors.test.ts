import { errors as undiciErrors } from "undici";
import { describe, expect, it } from "vitest";
import {
  CozeError,
  type CozeErrorCode,
  codeFromCoze,
  codeFromOAuth,
  fromTransportError,
  isCozeError,
  isFinalLimit,
  parseRetryAfter,
  safeMessage,
  suggestedRetryAfterMs,
} from "./errors.js";

describe("CozeError classification", () => {
  it("classifies the Coze codes the SDKs special-case, before the HTTP status", () => {
    expect(codeFromCoze(4100, 200)).toBe("authentication");
    expect(codeFromCoze(4101, 200)).toBe("permission");
    expect(codeFromCoze(4200, 200)).toBe("not_found");
    expect(codeFromCoze(4013, 200)).toBe("rate_limited");
    expect(codeFromCoze(4000, 500)).toBe("bad_request");
  });

  it("keeps Coze's rate-limit, quota, balance and plan codes apart (coze-api.md §17.2)", () => {
    const classes = {
      rate_limited: [4009, 4013, 4020, 4102],
      quota_exceeded: [4008, 4028],
      balance_insufficient: [4011, 4019, 4022, 4027, 788788103],
      plan_required: [6003],
      bad_request: [4010, 4315],
      not_found: [4314],
      unavailable: [5000],
    };
    for (const [code, cozeCodes] of Object.entries(classes)) {
      for (const n of cozeCodes) {
        // The Coze code wins over the status it came with (the emulator's 429 switch, §17.3).
        expect([n, codeFromCoze(n, 200)]).toEqual([n, code]);
        expect([n, codeFromCoze(n, 429)]).toEqual([n, code]);
      }
    }
    // 6006 (a code node timed out) and 4033 (meaning unknown) stay plain failures.
    expect(codeFromCoze(6006, 200)).toBe("failed");
    expect(codeFromCoze(4033, 200)).toBe("failed");
  });

  it("suggests a wait only where waiting helps", () => {
    const err = (code: CozeErrorCode, cozeCode?: number, retryAfterMs?: number) =>
      new CozeError(code, "x", { step: "workflow.run", cozeCode, retryAfterMs });
    expect(suggestedRetryAfterMs(err("rate_limited", 4013))).toBe(5_000);
    expect(suggestedRetryAfterMs(err("rate_limited", 4020))).toBe(60_000);
    expect(suggestedRetryAfterMs(err("rate_limited", 4013, 7_000))).toBe(7_000);
    expect(suggestedRetryAfterMs(err("rate_limited"))).toBe(5_000);
    for (const code of ["quota_exceeded", "balance_insufficient", "plan_required"] as const) {
      expect(suggestedRetryAfterMs(err(code, 4011))).toBeUndefined();
      expect(isFinalLimit(err(code))).toBe(true);
    }
    expect(isFinalLimit(err("rate_limited", 4013))).toBe(false);
  });

  it("falls back to the HTTP status, then to failed, for unknown Coze codes", () => {
    expect(codeFromCoze(777, 503)).toBe("unavailable");
    expect(codeFromCoze(777, 429)).toBe("rate_limited");
    expect(codeFromCoze(777, 200)).toBe("failed");
  });

  it("classifies OAuth error codes", () => {
    expect(codeFromOAuth("invalid_client", 401)).toBe("authentication");
    expect(codeFromOAuth("access_deny", 403)).toBe("permission");
    expect(codeFromOAuth("internal_error", 500)).toBe("unavailable");
    expect(codeFromOAuth("something_new", 503)).toBe("unavailable");
  });

  it("writes a short message that names the step and the Coze code, nothing upstream", () => {
    const err = new CozeError("rate_limited", safeMessage("rate_limited", "chat.create", 4013), {
      step: "chat.create",
      cozeCode: 4013,
      cozeMessage: "Model's request rate limit exceeded",
      logId: "20241015100256FA70F619ED86EC262A80",
    });
    expect(err.message).toBe("chat.create: rate limited (Coze code 4013)");
    expect(err.message).not.toContain("Model");
    expect(isCozeError(err, "rate_limited")).toBe(true);
    expect(isCozeError(err, "timeout")).toBe(false);
  });
});

describe("parseRetryAfter", () => {
  it("reads delta seconds and HTTP dates", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Thu, 01 Jan 2025 00:00:05 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe("fromTransportError", () => {
  it("maps undici timeouts to timeout and socket errors to unavailable", () => {
    expect(fromTransportError("x", new undiciErrors.HeadersTimeoutError()).code).toBe("timeout");
    expect(fromTransportError("x", new undiciErrors.SocketError("reset")).code).toBe("unavailable");
  });

  it("maps an abort to canceled, or to timeout when the signal timed out", () => {
    const canceled = new AbortController();
    canceled.abort();
    expect(fromTransportError("x", new Error("aborted"), canceled.signal).code).toBe("canceled");
    const timedOut = new AbortController();
    timedOut.abort(new DOMException("deadline", "TimeoutError"));
    expect(fromTransportError("x", new Error("aborted"), timedOut.signal).code).toBe("timeout");
  });
});
