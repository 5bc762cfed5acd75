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
  /** One upstream call as the Coze HTTP layer reports it. */
  upstream(channel: string, info: CallInfo): void;
  /** A token cache event (fetched, refreshed, failed, invalidated, evicted). */
  token(event: TokenEvent): void;
  /** Marks a server stream open; call the returned function once when it ends. */
  streamOpened(kind: "grpc" | "rest"): () => void;
  /** Marks an async-run poll loop started; call the returned function once when it ends. */
  pollStarted(): () => void;
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
  if (options.processMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: "coze_gateway_" });

  // The four metrics every request updates (see hot-metrics.ts); the rest are prom-client's.
  const requests = hotCounter(registry, {
    name: "coze_gateway_requests_total",
    help: "Caller requests by RPC method or REST route and outcome code.",
    labelNames: ["method", "code"],
  });
  const requestSeconds = hotHistogram(registry, {
    name: "coze_gateway_request_duration_seconds",
    help: "Caller request latency, to the end of the response (streams included).",
    labelNames: ["method", "code"],
    buckets,
  });
  const upstreamCalls = hotCounter(registry, {
    name: "coze_gateway_upstream_requests_total",
    help: "Coze API calls by channel, step and outcome.",
    labelNames: ["channel", "step", "outcome"],
  });
  const upstreamSeconds = hotHistogram(registry, {
    name: "coze_gateway_upstream_request_duration_seconds",
    help: "Coze API call latency: to the end of the body (unary) or to the headers (streams).",
    labelNames: ["channel", "step", "outcome"],
    buckets,
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
  new Gauge({
    name: "coze_gateway_token_cache",
    help: "Token cache counters since start: jwts_signed, token_requests, token_failures, tokens_fetched, cache_hits, background_refreshes, tokens_evicted; and tokens_cached, the unexpired tokens held now.",
    labelNames: ["counter"] as const,
    registers: [registry],
    collect() {
      const stats = options.tokenStats?.();
      if (!stats) return;
      this.set({ counter: "jwts_signed" }, stats.jwtsSigned);
      this.set({ counter: "token_requests" }, stats.tokenRequests);
      this.set({ counter: "token_failures" }, stats.tokenFailures);
      this.set({ counter: "cache_hits" }, stats.cacheHits);
      this.set({ counter: "background_refreshes" }, stats.backgroundRefreshes);
      this.set({ counter: "tokens_fetched" }, stats.tokensFetched);
      this.set({ counter: "tokens_cached" }, stats.tokensCached);
      this.set({ counter: "tokens_evicted" }, stats.tokensEvicted);
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
      requests.series(method, code).inc();
      requestSeconds.series(method, code).observe(seconds);
    },
    upstream(channel, info) {
      upstreamCalls.series(channel, info.step, info.outcome).inc();
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
    render: () => registry.metrics(),
  };
}
