import type { CallInfo } from "../coze/http.js";
import type { TokenCacheStats, TokenEvent } from "../coze/token-cache.js";
import { createLogger, type LogFn, type LogLevel } from "./logger.js";
import { createMetrics, type GatewayMetrics } from "./metrics.js";
import { createMetricsRoute, type MetricsRoute } from "./metrics-route.js";
import { type RequestLogFn, requestLogVia } from "./request-log.js";

/** Options for {@link createObservability}. */
export interface ObservabilityOptions {
  /** Least level written. Default `info`. */
  level?: LogLevel;
  /** Where JSON log lines go. Default standard error. */
  destination?: NodeJS.WritableStream;
  /** Serve `GET /metrics` (Prometheus text, no API key). Default true. */
  metricsRoute?: boolean;
  /** Token cache counters, read at scrape time. */
  tokenStats?: () => TokenCacheStats;
}

/** Logs and metrics of one gateway, with the hooks that feed them. */
export interface Observability {
  /** Structured logging (pino JSON lines) with secret fields redacted. */
  log: LogFn;
  /** Each request's line: what `log(level, "request", fields)` writes, made faster. */
  requestLog: RequestLogFn;
  metrics: GatewayMetrics;
  /** Feeds an upstream call into metrics and, when it failed, the log. */
  onUpstream(channel: string, info: CallInfo): void;
  /** Feeds a token cache event into metrics and, when it failed, the log. */
  onToken(event: TokenEvent): void;
  /** Serves `/metrics` when enabled. */
  publicRoute: MetricsRoute;
  /** Where the token cache counters come from (read at scrape time). */
  observeTokenCache(stats: () => TokenCacheStats): void;
  /** Writes out buffered log lines at once (before the process exits). */
  flush(): void;
}

const emptyStats: TokenCacheStats = {
  jwtsSigned: 0,
  tokenRequests: 0,
  tokenFailures: 0,
  tokensFetched: 0,
  cacheHits: 0,
  backgroundRefreshes: 0,
  tokensCached: 0,
  tokensEvicted: 0,
};

/** Creates the gateway's logger and metrics. */
export function createObservability(options: ObservabilityOptions = {}): Observability {
  const logger = createLogger(options);
  const { log } = logger;
  let tokenStats = options.tokenStats;
  const metrics = createMetrics({ tokenStats: () => tokenStats?.() ?? emptyStats });
  return {
    log,
    requestLog: requestLogVia(log),
    metrics,
    onUpstream(channel, info) {
      metrics.upstream(channel, info);
      if (info.outcome !== "ok") {
        log("warn", "coze call failed", {
          channel,
          step: info.step,
          outcome: info.outcome,
          status: info.status,
          cozeLogId: info.logId,
          retries: info.retries,
        });
      }
    },
    onToken(event) {
      metrics.token(event);
      if (event.type === "failed") {
        log("warn", "coze token request failed", {
          credential: event.key,
          code: event.code,
          status: event.status,
          cozeCode: event.cozeCode,
          cozeLogId: event.logId,
          retryInMs: event.retryInMs,
        });
      }
    },
    publicRoute: (options.metricsRoute ?? true) ? createMetricsRoute(metrics) : async () => false,
    observeTokenCache(stats) {
      tokenStats = stats;
    },
    flush: () => logger.flush(),
  };
}
