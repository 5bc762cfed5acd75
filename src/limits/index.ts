export { type LimitedRequest, slotTtlMs } from "./held-slots.js";
export {
  createKeyLimiter,
  type KeyLimiter,
  type KeyLimiterOptions,
  type KeyUsage,
  type LimiterEvents,
  type Verdict,
} from "./key-limits.js";
export { createLimitMetrics, type LimitMetrics } from "./limit-metrics.js";
export { type Period, periodOf, type QuotaPeriod } from "./periods.js";
export {
  durationText,
  type LimitFigure,
  rateLimitHeaders,
  retryAfterSeconds,
} from "./rate-limit-headers.js";
