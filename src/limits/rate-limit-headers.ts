/** One limit's figures as a response reports them. */
export interface LimitFigure {
  readonly limit: number;
  readonly remaining: number;
  /** Time until the limit is back to its initial state, in ms. */
  readonly resetMs: number;
}

/**
 * A duration the way OpenAI writes `x-ratelimit-reset-*` (Go's notation): `250ms`, `6s`,
 * `1.5s`, `1m0s`, `23h59m59s`. Whole milliseconds; 0 is `0s`.
 */
export function durationText(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return "0s";
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = `${(total % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** `Retry-After` in whole seconds, at least 1 (a 0 would invite a retry storm). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/**
 * OpenAI's rate limit headers for a key: `x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`, and the same three for
 * `-tokens`; a kind the key has no limit of is left out. REST responses carry them as headers,
 * Connect and gRPC responses as metadata of the same names.
 */
export function rateLimitHeaders(
  requests: LimitFigure | undefined,
  tokens: LimitFigure | undefined,
): Record<string, string> {
  // Literals with their names written out: names built per call would be new strings every
  // time, and V8 adds such properties (or a spread's) one by one in its runtime.
  const r = requests;
  const t = tokens;
  if (r !== undefined && t !== undefined) {
    return {
      "x-ratelimit-limit-requests": String(r.limit),
      "x-ratelimit-remaining-requests": String(r.remaining),
      "x-ratelimit-reset-requests": durationText(r.resetMs),
      "x-ratelimit-limit-tokens": String(t.limit),
      "x-ratelimit-remaining-tokens": String(t.remaining),
      "x-ratelimit-reset-tokens": durationText(t.resetMs),
    };
  }
  if (r !== undefined) {
    return {
      "x-ratelimit-limit-requests": String(r.limit),
      "x-ratelimit-remaining-requests": String(r.remaining),
      "x-ratelimit-reset-requests": durationText(r.resetMs),
    };
  }
  if (t !== undefined) {
    return {
      "x-ratelimit-limit-tokens": String(t.limit),
      "x-ratelimit-remaining-tokens": String(t.remaining),
      "x-ratelimit-reset-tokens": durationText(t.resetMs),
    };
  }
  return {};
}
