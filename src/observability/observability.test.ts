import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type RequestLine, requestLogVia } from "../server/interceptors.js";
import { createObservability } from "./observability.js";

function capture() {
  const out = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  out.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
  });
  return { out, lines };
}

describe("observability", () => {
  it("writes JSON lines with level names and ISO times", async () => {
    const { out, lines } = capture();
    const o = createObservability({ destination: out });
    const before = Date.now();
    o.log("info", "request", { requestId: "r1", code: "ok" });
    const after = Date.now();
    await new Promise((r) => setImmediate(r));
    expect(lines[0]).toMatchObject({ level: "info", msg: "request", requestId: "r1", code: "ok" });
    const time = String(lines[0]?.time);
    expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(time)).toBeLessThanOrEqual(after);
  });

  it("redacts any field that could hold a secret, even if a caller passes one by mistake", async () => {
    const { out, lines } = capture();
    const o = createObservability({ destination: out });
    o.log("warn", "oops", {
      authorization: "Bearer sk-live-1",
      private_key: "-----BEGIN PRIVATE KEY-----",
      nested: { token: "czs_abc", accessToken: "czs_def" },
    });
    await new Promise((r) => setImmediate(r));
    const text = JSON.stringify(lines);
    for (const secret of ["sk-live-1", "BEGIN PRIVATE KEY", "czs_abc", "czs_def"])
      expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({
      authorization: "[redacted]",
      nested: { token: "[redacted]" },
    });
  });

  it("feeds failed upstream calls and token failures into metrics and a warning", async () => {
    const { out, lines } = capture();
    const o = createObservability({ destination: out });
    o.onUpstream("cn", {
      step: "chat.stream",
      status: 503,
      durationMs: 5,
      outcome: "unavailable",
      logId: "L1",
      retriedAuth: false,
      retries: 1,
    });
    o.onToken({
      type: "failed",
      key: "k",
      step: "token",
      durationMs: 1,
      background: false,
      code: "unavailable",
      retryInMs: 1000,
    });
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.msg)).toEqual(["coze call failed", "coze token request failed"]);
    const text = await o.metrics.render();
    expect(text).toContain(
      'coze_gateway_upstream_requests_total{channel="cn",step="chat.stream",outcome="unavailable"} 1',
    );
    expect(text).toContain('coze_gateway_token_events_total{event="failed"} 1');
  });

  describe("the request line", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    const raw = () => {
      const out = new PassThrough();
      let text = "";
      out.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      return { out, text: () => text };
    };

    const base: RequestLine = {
      requestId: "4d671084-3676-4c75-ae84-f3ad39b510d4",
      method: "POST /v1/chat/completions",
      code: "200",
      durationMs: 12,
      caller: "bench",
      cozeLogIds: ["202611242114260888E1F0C402D7BC6821"],
      aborted: false,
    };
    const cases: [string, "info" | "warn", RequestLine][] = [
      ["a REST answer", "info", base],
      [
        "a gRPC failure",
        "warn",
        { ...base, method: "cozegateway.v1.ChatService/Chat", code: "unavailable" },
      ],
      [
        "no id, caller or log ids",
        "info",
        { ...base, requestId: undefined, caller: undefined, cozeLogIds: undefined },
      ],
      ["an aborted request", "info", { ...base, code: "499", aborted: true }],
      ["several log ids", "info", { ...base, cozeLogIds: ["a", 'b"c', "d"] }],
      [
        "strings that need escaping",
        "info",
        { ...base, caller: 'key "ops"\\ \u0001\n é 🙂', requestId: "x".repeat(64) },
      ],
      // Under 42 characters without control characters pino escapes by its own loop.
      ["a short string with a quote and a backslash", "info", { ...base, caller: 'o"p\\s' }],
      ["a long duration", "info", { ...base, durationMs: 123_456_789 }],
    ];

    it.each(cases)("is byte for byte the line pino writes: %s", async (_, level, line) => {
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.parse("2026-11-24T21:01:35.638Z"));
      const fast = raw();
      createObservability({ destination: fast.out }).requestLog(level, line);
      const viaPino = raw();
      const o = createObservability({ destination: viaPino.out });
      requestLogVia(o.log)(level, line);
      await new Promise((r) => setImmediate(r));
      expect(fast.text()).not.toBe("");
      expect(fast.text()).toBe(viaPino.text());
      const parsed = JSON.parse(fast.text());
      expect(parsed.time).toBe("2026-11-24T21:01:35.638Z");
      expect(parsed.caller).toBe(line.caller);
    });

    it("follows the log level and keeps its place among other lines", async () => {
      const warnOnly = raw();
      createObservability({ destination: warnOnly.out, level: "warn" }).requestLog("info", base);
      const { out, lines } = capture();
      const o = createObservability({ destination: out });
      o.log("info", "before");
      o.requestLog("info", base);
      o.log("info", "after");
      await new Promise((r) => setImmediate(r));
      expect(warnOnly.text()).toBe("");
      expect(lines.map((l) => l.msg)).toEqual(["before", "request", "after"]);
    });
  });
});
