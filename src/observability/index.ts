export type { LogFn, LogLevel } from "./logger.js";
export type { GatewayMetrics } from "./metrics.js";
export type { MetricsRoute } from "./metrics-route.js";
export {
  createObservability,
  type Observability,
  type ObservabilityOptions,
} from "./observability.js";
export { createReloadMetrics, type ReloadMetrics, type ReloadOutcome } from "./reload-metrics.js";
export {
  type RequestLine,
  type RequestLogFn,
  type RequestOutcome,
  requestLogVia,
} from "./request-log.js";
export {
  createTracing,
  type RequestTrace,
  type SpanEnd,
  type TraceHeaders,
  type Tracing,
  type TracingOptions,
} from "./tracing.js";
