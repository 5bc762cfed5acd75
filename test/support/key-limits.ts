import type { KeyLimitsConfig } from "../../src/config/index.js";
import type { LimitedRequest } from "../../src/limits/index.js";

/** Limits with every field unset, to spread a few over. */
export const noLimits: KeyLimitsConfig = {
  requestsPerMinute: undefined,
  tokensPerMinute: undefined,
  tokensPerDay: undefined,
  maxStreams: undefined,
  quota: undefined,
};

/** A new request as the limiter sees it: holding nothing yet. */
export function request(): LimitedRequest {
  return { limitHold: undefined };
}
