import { errors as undiciErrors } from "undici";
import { describe, expect, it } from "vitest";
import {
  CozeError,
  codeFromCoze,
  codeFromOAuth,
  fromTransportError,
  isCozeError,
  parseRetryAfter,
  safeMessage,
} from "./errors.js";

describe("CozeError classification", () => {
  it("classifies the Coze codes the SDKs special-case, before the HTTP status", () => {
    expect(codeFromCoze(4100, 200)).toBe("authentication");
    expect(codeFromCoze(4101, 200)).toBe("permission");
    expect(codeFromCoze(4200, 200)).toBe("not_found");
    expect(codeFromCoze(4013, 200)).toBe("rate_limited");
    expect(codeFromCoze(4000, 500)).toBe("bad_request");
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
