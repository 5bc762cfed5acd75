import { describe, expect, it } from "vitest";
import { captureLog } from "../../test/support/log-capture.js";
import { createLogger } from "./logger.js";

describe("logger", () => {
  it("writes JSON lines with level names and ISO times", async () => {
    const log = captureLog();
    const logger = createLogger({ destination: log.out });
    const before = Date.now();
    logger.log("info", "request", { requestId: "r1", code: "ok" });
    const after = Date.now();
    await new Promise((r) => setImmediate(r));
    expect(log.lines()[0]).toMatchObject({
      level: "info",
      msg: "request",
      requestId: "r1",
      code: "ok",
    });
    const time = String(log.lines()[0]?.time);
    expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(time)).toBeLessThanOrEqual(after);
  });

  it("redacts any field that could hold a secret, even if a caller passes one by mistake", async () => {
    const log = captureLog();
    const logger = createLogger({ destination: log.out });
    logger.log("warn", "oops", {
      authorization: "Bearer sk-live-1",
      private_key: "-----BEGIN PRIVATE KEY-----",
      nested: { token: "czs_abc", accessToken: "czs_def" },
    });
    await new Promise((r) => setImmediate(r));
    const text = JSON.stringify(log.lines());
    for (const secret of ["sk-live-1", "BEGIN PRIVATE KEY", "czs_abc", "czs_def"])
      expect(text).not.toContain(secret);
    expect(log.lines()[0]).toMatchObject({
      authorization: "[redacted]",
      nested: { token: "[redacted]" },
    });
  });
});
