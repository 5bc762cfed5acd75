import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { CallInfo } from "../coze/http.js";
import type { TokenCacheStats, TokenEvent } from "../coze/token-cache.js";

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
  /** A token cache event (fetched, refreshed, failed, invalidated). */
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

  const requests = new Counter({
    name: "coze_gateway_requests_total",
    help: "Caller requests by RPC method or REST route and outcome code.",
    labelNames: ["method", "code"] as const,
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: "coze_gateway_request_duration_seconds",
    help: "Caller request latency, to the end of the response (streams included).",
    labelNames: ["method", "code"] as const,
    buckets,
    registers: [registry],
  });
  const upstreamCalls = new Counter({
    name: "coze_gateway_upstream_requests_total",
    help: "Coze API calls by channel, step and outcome.",
    labelNames: ["channel", "step", "outcome"] as const,
    registers: [registry],
  });
  const upstreamSeconds = new Histogram({
    name: "coze_gateway_upstream_request_duration_seconds",
    help: "Coze API call latency: to the end of the body (unary) or to the headers (streams).",
    labelNames: ["channel", "step", "outcome"] as const,
    buckets,
    registers: [registry],
  });
  const upstreamRetries = new Counter({
    name: "coze_gateway_upstream_retries_total",
    help: "Coze API calls sent again after a transient failure or a rejected token.",
    labelNames: ["channel", "step", "reason"] as const,
    registers: [registry],
  });
  const tokenEvents = new Counter({
    name: "coze_gateway_token_events_total",
    help: "Access token cache events: fetched, refreshed, failed, invalidated.",
    labelNames: ["event"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "coze_gateway_token_cache",
    help: "Token cache counters since start: jwts_signed, token_requests, token_failures, cache_hits, background_refreshes.",
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

  // The label-bound children of the per-request metrics, made once per label combination:
  // prom-client hashes the label object on every inc/observe otherwise (issue #6 profile). The
  // label values are bounded (route names, procedures, codes, channels, steps, outcomes).
  const requestSeries = seriesOf((method: string, code: string) => ({
    count: requests.labels(method, code),
    seconds: requestSeconds.labels(method, code),
  }));
  const upstreamSeries = seriesOf((channel: string, step: string, outcome: string) => ({
    count: upstreamCalls.labels(channel, step, outcome),
    seconds: upstreamSeconds.labels(channel, step, outcome),
  }));

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
      const series = requestSeries(method, code);
      series.count.inc();
      series.seconds.observe(seconds);
    },
    upstream(channel, info) {
      const series = upstreamSeries(channel, info.step, info.outcome);
      series.count.inc();
      series.seconds.observe(info.durationMs / 1000);
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

/** Memoizes `make` by its string arguments: one map level per argument, no key strings made. */
function seriesOf<A extends string[], T>(make: (...labels: A) => T): (...labels: A) => T {
  const root = new Map<string, unknown>();
  return (...labels) => {
    let level = root;
    const last = labels.length - 1;
    for (let i = 0; i < last; i++) {
      const label = labels[i] as string;
      let next = level.get(label) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(label, next);
      }
      level = next;
    }
    let series = level.get(labels[last] as string) as T | undefined;
    if (series === undefined) {
      series = make(...labels);
      level.set(labels[last] as string, series);
    }
    return series;
  };
}
