import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { CallInfo } from "../coze/http.js";
import type { TokenCacheStats, TokenEvent } from "../coze/token-cache.js";
import { hotCounter, hotHistogram } from "./hot-metrics.js";

/** Latency buckets in seconds: sub-millisecond proxying up to long streams and sync runs. */
const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * The gateway's Prometheus metrics. Labels carry only our own bounded vocabularies (RPC or
 * route names, codes, channel names, upstream steps): never a key, token, user id or Coze id.
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** One finished caller request: `method` is the RPC path or REST route, `code` its outcome. */
  request(method: string, code: string, seconds: number): void;
  /**
   * One finished request of an authenticated key: counted by key name and model (the bounded
   * metrics name the core gave it, `""` for a request that names none) and outcome, with the
   * Coze tokens its answers reported.
   */
  keyRequest(
    key: string,
    model: string,
    outcome: string,
    promptTokens: number,
    completionTokens: number,
  ): void;
  /** Why a request failed: a stable reason from a fixed vocabulary (never a field or a name). */
  failure(reason: string): void;
  /** One upstream call as the Coze HTTP layer reports it. */
  upstream(channel: string, info: CallInfo): void;
  /** A token cache event (fetched, refreshed, failed, invalidated, evicted). */
  token(event: TokenEvent): void;
  /** Marks a server stream open; call the returned function once when it ends. */
  streamOpened(kind: "grpc" | "rest"): () => void;
  /** Marks an async-run poll loop started; call the returned function once when it ends. */
  pollStarted(): () => void;
  /**
   * A `workflow-async:` run of `channel` held by the gateway over `stream_run` because Coze
   * refused `is_async` for the plan: `refused` (this start) or `remembered` (a recent refusal).
   */
  asyncFallback(channel: string, reason: "refused" | "remembered"): void;
  /** Where the number of held runs running now is read, at scrape time. */
  observeHeldRuns(running: () => number): void;
  /** The text served at `/metrics`. */
  render(): Promise<string>;
  readonly contentType: string;
}

/** Options for {@link createMetrics}. */
export interface MetricsOptions {
  /** Token cache counters, read at scrape time. */
  tokenStats?: () => TokenCacheStats;
  /** Also export Node process metrics (memory, CPU, event loop lag). Default true. */
  processMetrics?: boolean;
}

/** Creates the metrics on a registry of their own (several gateways can share a process). */
export function createMetrics(options: MetricsOptions = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: "coze_gateway_" });
    // Gauges named like counters, which `promtool check metrics` rejects; the same figures stay
    // by type in `…_active_handles`, `…_active_requests` and `…_active_resources`.
    for (const name of ["active_handles_total", "active_requests_total", "active_resources_total"])
      registry.removeSingleMetric(`coze_gateway_nodejs_${name}`);
  }

  // The series every request updates: hot metrics (hot-metrics.ts, BENCHMARKS.md).
  const requestSeconds = hotHistogram(registry, {
    name: "coze_gateway_request_duration_seconds",
    help: "Caller request latency, to the end of the response (streams included).",
    labelNames: ["method", "code"],
    buckets,
    counter: {
      name: "coze_gateway_requests_total",
      help: "Caller requests by RPC method or REST route and outcome code.",
    },
  });
  const keyRequests = hotCounter(registry, {
    name: "coze_gateway_key_requests_total",
    help: "Requests of each API key by model and outcome (ok, client_error, error, canceled).",
    labelNames: ["key", "model", "outcome"],
  });
  const cozeTokens = hotCounter(registry, {
    name: "coze_gateway_coze_tokens_total",
    help: "Tokens Coze reported in the answers, by API key, model and type (prompt, completion).",
    labelNames: ["key", "model", "type"],
  });
  const failures = new Counter({
    name: "coze_gateway_request_failures_total",
    help: "Failed requests by reason (unknown_key, model_not_allowed, invalid_argument, coze_unavailable, ...).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const upstreamSeconds = hotHistogram(registry, {
    name: "coze_gateway_upstream_request_duration_seconds",
    help: "Coze API call latency: to the end of the body (unary) or to the headers (streams).",
    labelNames: ["channel", "step", "outcome"],
    buckets,
    counter: {
      name: "coze_gateway_upstream_requests_total",
      help: "Coze API calls by channel, step and outcome.",
    },
  });
  const upstreamRetries = new Counter({
    name: "coze_gateway_upstream_retries_total",
    help: "Coze API calls sent again after a transient failure or a rejected token.",
    labelNames: ["channel", "step", "reason"] as const,
    registers: [registry],
  });
  const tokenEvents = new Counter({
    name: "coze_gateway_token_events_total",
    help: "Access token cache events: fetched, refreshed, failed, invalidated, evicted.",
    labelNames: ["event"] as const,
    registers: [registry],
  });
  new Counter({
    name: "coze_gateway_token_cache_total",
    help: "Token cache counts since start: jwts_signed, token_requests, token_failures, tokens_fetched, cache_hits, background_refreshes, tokens_evicted.",
    labelNames: ["counter"] as const,
    registers: [registry],
    collect() {
      const stats = options.tokenStats?.();
      if (!stats) return;
      // Read from the cache's own counters at scrape time: set, not added to.
      this.reset();
      this.inc({ counter: "jwts_signed" }, stats.jwtsSigned);
      this.inc({ counter: "token_requests" }, stats.tokenRequests);
      this.inc({ counter: "token_failures" }, stats.tokenFailures);
      this.inc({ counter: "tokens_fetched" }, stats.tokensFetched);
      this.inc({ counter: "cache_hits" }, stats.cacheHits);
      this.inc({ counter: "background_refreshes" }, stats.backgroundRefreshes);
      this.inc({ counter: "tokens_evicted" }, stats.tokensEvicted);
    },
  });
  new Gauge({
    name: "coze_gateway_tokens_cached",
    help: "Unexpired access tokens the token cache holds now, one per credential and session.",
    registers: [registry],
    collect() {
      const stats = options.tokenStats?.();
      if (stats) this.set(stats.tokensCached);
    },
  });
  const activeStreams = new Gauge({
    name: "coze_gateway_active_streams",
    help: "Server streams open now (gRPC/Connect server streams and REST event streams).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const pollsInFlight = new Gauge({
    name: "coze_gateway_polls_in_flight",
    help: "Async workflow runs being polled now.",
    registers: [registry],
  });

  const asyncFallbacks = new Counter({
    name: "coze_gateway_workflow_async_fallbacks_total",
    help: "workflow-async runs the gateway held itself over stream_run because Coze refused is_async for the channel's plan (6003), by reason: refused (this start) or remembered (a recent refusal).",
    labelNames: ["channel", "reason"] as const,
    registers: [registry],
  });
  let heldRunning: () => number = () => 0;
  new Gauge({
    name: "coze_gateway_held_runs",
    help: "Workflow runs the gateway holds itself now (lost if the process stops).",
    registers: [registry],
    collect() {
      this.set(heldRunning());
    },
  });

  /** Returns a function that undoes `inc` exactly once. */
  function once(dec: () => void): () => void {
    let done = false;
    return () => {
      if (!done) {
        done = true;
        dec();
      }
    };
  }

  return {
    registry,
    contentType: registry.contentType,
    request(method, code, seconds) {
      requestSeconds.series(method, code).observe(seconds);
    },
    keyRequest(key, model, outcome, promptTokens, completionTokens) {
      keyRequests.series(key, model, outcome).inc();
      if (promptTokens > 0) cozeTokens.series(key, model, "prompt").inc(promptTokens);
      if (completionTokens > 0) cozeTokens.series(key, model, "completion").inc(completionTokens);
    },
    failure(reason) {
      failures.inc({ reason });
    },
    upstream(channel, info) {
      upstreamSeconds.series(channel, info.step, info.outcome).observe(info.durationMs / 1000);
      if (info.retries > 0)
        upstreamRetries.inc({ channel, step: info.step, reason: "transient" }, info.retries);
      if (info.retriedAuth)
        upstreamRetries.inc({ channel, step: info.step, reason: "token_rejected" });
    },
    token(event) {
      tokenEvents.inc({ event: event.type });
    },
    streamOpened(kind) {
      activeStreams.inc({ kind });
      return once(() => activeStreams.dec({ kind }));
    },
    pollStarted() {
      pollsInFlight.inc();
      return once(() => pollsInFlight.dec());
    },
    asyncFallback(channel, reason) {
      asyncFallbacks.inc({ channel, reason });
    },
    observeHeldRuns(running) {
      heldRunning = running;
    },
    render: () => registry.metrics(),
  };
}
