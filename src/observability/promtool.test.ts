import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createMetrics } from "./metrics.js";

// `promtool check metrics` (Debian's `prometheus` package, which .ci/run installs) lints the
// exposition: counters typed as counters and named `_total`, no `_total` on anything else, help
// text on every metric, base units. Skipped where promtool is not installed.
const promtool = "/usr/bin/promtool";

describe.skipIf(!existsSync(promtool))("the /metrics text", () => {
  it("passes promtool check metrics, with every series the gateway writes present", async () => {
    const metrics = createMetrics({
      tokenStats: () => ({
        jwtsSigned: 1,
        tokenRequests: 2,
        tokenFailures: 0,
        cacheHits: 9,
        backgroundRefreshes: 1,
        tokensFetched: 2,
        tokensCached: 1,
        tokensEvicted: 0,
      }),
    });
    metrics.request("POST /v1/chat/completions", "200", 0.02);
    metrics.keyRequest("team-a", "support-bot", "ok", 31, 7);
    metrics.failure("model_not_allowed");
    metrics.upstream("cn-main", {
      step: "chat.stream",
      status: 200,
      durationMs: 12,
      outcome: "ok",
      logId: "L",
      retriedAuth: true,
      retries: 1,
    });
    metrics.token({ type: "fetched", key: "k", step: "token", durationMs: 3, lifetimeMs: 1 });
    metrics.streamOpened("rest");
    metrics.pollStarted();
    const text = await metrics.render();
    for (const name of [
      "coze_gateway_requests_total",
      "coze_gateway_key_requests_total",
      "coze_gateway_coze_tokens_total",
      "coze_gateway_request_failures_total",
      "coze_gateway_upstream_retries_total",
      "coze_gateway_token_cache_total",
      "coze_gateway_process_cpu_seconds_total",
    ]) {
      expect(text).toContain(`# TYPE ${name} counter`);
    }
    const check = spawnSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(check.stdout + check.stderr).toBe("");
    expect(check.status).toBe(0);
  });
});
