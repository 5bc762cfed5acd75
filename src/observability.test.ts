import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
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
});
