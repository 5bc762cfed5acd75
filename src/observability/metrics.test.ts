import { describe, expect, it } from "vitest";
import { createMetrics } from "./metrics.js";

describe("gateway metrics", () => {
  it("counts requests, upstream calls, retries, token events, streams and polls", async () => {
    const metrics = createMetrics({
      processMetrics: false,
      tokenStats: () => ({
        jwtsSigned: 1,
        tokenRequests: 2,
        tokenFailures: 1,
        tokensFetched: 1,
        cacheHits: 40,
        backgroundRefreshes: 1,
        tokensCached: 3,
        tokensEvicted: 7,
      }),
    });
    metrics.request("cozegateway.v1.ChatService/Chat", "ok", 0.02);
    metrics.request("cozegateway.v1.ChatService/Chat", "ok", 0.5);
    metrics.request("cozegateway.v1.ChatService/Chat", "internal", 0.5);
    metrics.request("POST /v1/chat/completions", "429", 0.001);
    metrics.upstream("cn-main", {
      step: "chat.stream",
      status: 200,
      durationMs: 12,
      outcome: "ok",
      logId: "L",
      retriedAuth: true,
      retries: 2,
    });
    metrics.token({ type: "fetched", key: "k", step: "token", durationMs: 3, lifetimeMs: 1 });
    const endStream = metrics.streamOpened("grpc");
    metrics.streamOpened("rest");
    const endPoll = metrics.pollStarted();
    endStream();
    endStream(); // idempotent
    endPoll();
    metrics.asyncFallback("cn-main", "refused");
    metrics.asyncFallback("cn-main", "remembered");
    metrics.asyncFallback("cn-main", "remembered");
    metrics.observeHeldRuns(() => 3);
    const text = await metrics.render();
    expect(text).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ChatService/Chat",code="ok"} 2',
    );
    expect(text).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ChatService/Chat",code="internal"} 1',
    );
    expect(text).toContain(
      'coze_gateway_requests_total{method="POST /v1/chat/completions",code="429"} 1',
    );
    expect(text).toContain(
      'coze_gateway_upstream_requests_total{channel="cn-main",step="chat.stream",outcome="ok"} 1',
    );
    expect(text).toContain(
      'coze_gateway_upstream_retries_total{channel="cn-main",step="chat.stream",reason="transient"} 2',
    );
    expect(text).toContain(
      'coze_gateway_upstream_retries_total{channel="cn-main",step="chat.stream",reason="token_rejected"} 1',
    );
    expect(text).toContain('coze_gateway_token_events_total{event="fetched"} 1');
    expect(text).toContain('coze_gateway_token_cache_total{counter="cache_hits"} 40');
    expect(text).toContain("coze_gateway_tokens_cached 3");
    expect(text).toContain('coze_gateway_token_cache_total{counter="tokens_evicted"} 7');
    expect(text).toContain('coze_gateway_active_streams{kind="grpc"} 0');
    expect(text).toContain('coze_gateway_active_streams{kind="rest"} 1');
    expect(text).toContain("coze_gateway_polls_in_flight 0");
    expect(text).toContain(
      'coze_gateway_workflow_async_fallbacks_total{channel="cn-main",reason="remembered"} 2',
    );
    expect(text).toContain("coze_gateway_held_runs 3");
    expect(text).toMatch(
      /coze_gateway_request_duration_seconds_bucket\{le="0.025",method="cozegateway.v1.ChatService\/Chat",code="ok"\} 1\n/,
    );
    expect(text).toMatch(
      /coze_gateway_request_duration_seconds_bucket\{le="0.5",method="cozegateway.v1.ChatService\/Chat",code="ok"\} 2\n/,
    );
  });

  it("keeps two gateways' metrics apart", async () => {
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.request("m", "ok", 0.1);
    expect(await b.render()).not.toContain('method="m"');
  });
});
