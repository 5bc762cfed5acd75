import { describe, expect, it } from "vitest";
import { captureLog } from "../../test/support/log-capture.js";
import { createObservability } from "./observability.js";

describe("observability", () => {
  it("feeds failed upstream calls and token failures into metrics and a warning", async () => {
    const log = captureLog();
    const o = createObservability({ destination: log.out });
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
    expect(log.lines().map((l) => l.msg)).toEqual([
      "coze call failed",
      "coze token request failed",
    ]);
    const text = await o.metrics.render();
    expect(text).toContain(
      'coze_gateway_upstream_requests_total{channel="cn",step="chat.stream",outcome="unavailable"} 1',
    );
    expect(text).toContain('coze_gateway_token_events_total{event="failed"} 1');
  });
});
