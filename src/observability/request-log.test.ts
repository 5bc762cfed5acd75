import { afterEach, describe, expect, it, vi } from "vitest";
import { captureLog } from "../../test/support/log-capture.js";
import { createLogger } from "./logger.js";
import { type RequestLine, requestLogVia } from "./request-log.js";

describe("the request line", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const base: RequestLine = {
    requestId: "4d671084-3676-4c75-ae84-f3ad39b510d4",
    traceId: "0af7651916cd43dd8448eb211c80319c",
    method: "POST /v1/chat/completions",
    code: "200",
    outcome: "ok",
    durationMs: 12,
    caller: "bench",
    client: "203.0.113.7",
    model: "support-bot",
    kind: "bot",
    channel: "cn-main",
    promptTokens: 31,
    completionTokens: 7,
    reason: undefined,
    field: undefined,
    cozeLogIds: ["202611242114260888E1F0C402D7BC6821"],
    aborted: false,
  };
  const cases: [string, "info" | "warn", RequestLine][] = [
    ["a REST answer", "info", base],
    [
      "a gRPC failure",
      "warn",
      {
        ...base,
        method: "cozegateway.v1.ChatService/Chat",
        code: "unavailable",
        outcome: "error",
        reason: "coze_unavailable",
      },
    ],
    [
      "a refusal naming the field, before the core",
      "info",
      {
        ...base,
        code: "400",
        outcome: "client_error",
        model: undefined,
        kind: undefined,
        channel: undefined,
        promptTokens: undefined,
        completionTokens: undefined,
        reason: "invalid_argument",
        field: "messages[1].role",
      },
    ],
    [
      "no id, caller or log ids",
      "info",
      {
        ...base,
        requestId: undefined,
        traceId: undefined,
        caller: undefined,
        client: undefined,
        cozeLogIds: undefined,
      },
    ],
    [
      "an aborted request",
      "info",
      { ...base, code: "499", outcome: "canceled", reason: "canceled", aborted: true },
    ],
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

  it.each(cases)("writes one JSON line with the request's fields: %s", async (_, level, line) => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse("2026-11-24T21:01:35.638Z"));
    const out = captureLog();
    requestLogVia(createLogger({ destination: out.out }).log)(level, line);
    await new Promise((r) => setImmediate(r));
    const lines = out.text().trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] as string);
    const present = Object.fromEntries(
      Object.entries(line).filter(([name, v]) => v !== undefined && name !== "aborted"),
    );
    expect(parsed).toEqual({
      level,
      time: "2026-11-24T21:01:35.638Z",
      ...present,
      ...(line.aborted ? { aborted: true } : {}),
      msg: "request",
    });
    // The fields in the order of RequestLine, whatever was left out.
    const order = Object.keys(base).filter((k) => k in parsed);
    expect(Object.keys(parsed).filter((k) => k in base)).toEqual(order);
  });

  it("follows the log level and keeps its place among other lines", async () => {
    const warnOnly = captureLog();
    requestLogVia(createLogger({ destination: warnOnly.out, level: "warn" }).log)("info", base);
    const log = captureLog();
    const logger = createLogger({ destination: log.out });
    logger.log("info", "before");
    requestLogVia(logger.log)("info", base);
    logger.log("info", "after");
    await new Promise((r) => setImmediate(r));
    expect(warnOnly.text()).toBe("");
    expect(log.lines().map((l) => l.msg)).toEqual(["before", "request", "after"]);
  });
});
