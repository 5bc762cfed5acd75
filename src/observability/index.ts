export type { LogFn, LogLevel } from "./logger.js";
export type { GatewayMetrics } from "./metrics.js";
export type { MetricsRoute } from "./metrics-route.js";
export {
  createObservability,
  type Observability,
  type ObservabilityOptions,
} from "./observability.js";
export {
  type RequestLine,
  type RequestLogFn,
  type RequestOutcome,
  requestLogVia,
} from "./request-log.js";
export { formatTraceParent, readTraceParent, type TraceParent } from "./trace-context.js";
export {
  createTracing,
  forwardingTracing,
  type RequestTrace,
  type SpanEnd,
  type TraceHeaders,
  type Tracing,
  type TracingOptions,
} from "./tracing.js";
