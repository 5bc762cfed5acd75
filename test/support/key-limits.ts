import type { KeyLimitsConfig } from "../../src/config/index.js";

/** Limits with every field unset, to spread a few over. */
export const noLimits: KeyLimitsConfig = {
  requestsPerMinute: undefined,
  tokensPerMinute: undefined,
  tokensPerDay: undefined,
  maxStreams: undefined,
  quota: undefined,
};
