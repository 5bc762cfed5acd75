import type { KeyLimitsConfig } from "../config/index.js";
import { GatewayError, type LimitKind } from "../service/index.js";
import type { Admission, OpResult } from "../state/index.js";
import type { Period } from "./periods.js";
import { durationText, type LimitFigure, rateLimitHeaders } from "./rate-limit-headers.js";

/** What a call may do, by the key's limits: go on with these headers, or stop with this error. */
export type Verdict =
  | { readonly ok: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly error: GatewayError };

function figure(limit: number | undefined, res: OpResult | undefined): LimitFigure | undefined {
  return limit === undefined || res === undefined
    ? undefined
    : { limit, remaining: res.remaining, resetMs: res.resetMs };
}

/**
 * The figures of the token limit closest to refusing (fewest remaining; the first on a tie): per
 * minute, per day, or the quota.
 */
export function tokenFigure(
  l: KeyLimitsConfig,
  perMinute: OpResult | undefined,
  perDay: OpResult | undefined,
  quota: OpResult | undefined,
): LimitFigure | undefined {
  let limit = l.tokensPerMinute;
  let res = limit === undefined ? undefined : perMinute;
  if (
    l.tokensPerDay !== undefined &&
    perDay !== undefined &&
    (res === undefined || perDay.remaining < res.remaining)
  ) {
    limit = l.tokensPerDay;
    res = perDay;
  }
  const q = l.quota?.tokens;
  if (
    q !== undefined &&
    quota !== undefined &&
    (res === undefined || quota.remaining < res.remaining)
  ) {
    limit = q;
    res = quota;
  }
  return figure(limit, res);
}

/**
 * The verdict of an admission: the first refusal by weight (quota, tokens per day and per
 * minute, requests, streams), waiting for the longest of all that refused; else the figures. A
 * call that is not metered is never refused.
 */
export function judge(l: KeyLimitsConfig, period: Period, a: Admission, metered: boolean): Verdict {
  const headers = rateLimitHeaders(
    figure(l.requestsPerMinute, a.requests),
    tokenFigure(l, a.tokensPerMinute, a.tokensPerDay, a.quota),
  );
  // Most calls pass: the words below are written only for a refusal.
  if (!metered || a.allowed) return { ok: true, headers };
  const refusals: [LimitKind, OpResult | undefined, () => string][] = [
    [
      "quota",
      a.quota,
      () =>
        `quota exhausted: ${l.quota?.tokens} Coze tokens per ${l.quota?.per} for this API key; it resets at ${new Date(period.endMs).toISOString()}`,
    ],
    ["tokens", a.tokensPerDay, () => `rate limit reached: ${l.tokensPerDay} Coze tokens per day`],
    [
      "tokens",
      a.tokensPerMinute,
      () => `rate limit reached: ${l.tokensPerMinute} Coze tokens per minute`,
    ],
    [
      "requests",
      a.requests,
      () => `rate limit reached: ${l.requestsPerMinute} requests per minute`,
    ],
    ["streams", a.streams, () => `too many streams open for this API key (${l.maxStreams})`],
  ];
  const refused = refusals.filter(([, res]) => res !== undefined && !res.allowed);
  const first = refused[0];
  if (first === undefined) return { ok: true, headers };
  const [kind, , words] = first;
  const text = words();
  const retryAfterMs = Math.max(...refused.map(([, res]) => res?.retryAfterMs ?? 0));
  const message =
    kind === "quota" || kind === "streams"
      ? text
      : `${text} for this API key; try again in ${durationText(retryAfterMs)}`;
  const code =
    kind === "quota"
      ? "insufficient_quota"
      : kind === "streams"
        ? "too_many_streams"
        : "rate_limit_exceeded";
  return {
    ok: false,
    error: new GatewayError(code, message, {
      retryAfterMs,
      limit: { kind, headers },
    }),
  };
}
