import type { KeyLimitsConfig } from "../config/index.js";
import { GatewayError, type LimitKind } from "../service/index.js";
import type { OpResult } from "../state/index.js";
import type { Period } from "./periods.js";
import { durationText, type LimitFigure, rateLimitHeaders } from "./rate-limit-headers.js";

/** What a call may do, by the key's limits: go on with these headers, or stop with this error. */
export type Verdict =
  | { readonly ok: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly error: GatewayError };

/** The gates a call can be refused by. */
const gates = ["quota", "tpd", "tpm", "rpm", "streams"] as const;

function figure(limit: number | undefined, res: OpResult | undefined): LimitFigure | undefined {
  return limit === undefined || res === undefined
    ? undefined
    : { limit, remaining: res.remaining, resetMs: res.resetMs };
}

/** Of two figures, the one with fewer remaining (the first on a tie). */
function closer(a: LimitFigure | undefined, b: LimitFigure | undefined): LimitFigure | undefined {
  return a === undefined || (b !== undefined && b.remaining < a.remaining) ? b : a;
}

/** The figures of the token limit closest to refusing: per minute, per day, or the quota. */
export function tokenFigure(
  l: KeyLimitsConfig,
  r: (name: "tpm" | "tpd" | "quota") => OpResult | undefined,
): LimitFigure | undefined {
  return closer(
    closer(figure(l.tokensPerMinute, r("tpm")), figure(l.tokensPerDay, r("tpd"))),
    figure(l.quota?.tokens, r("quota")),
  );
}

/**
 * The verdict of a batch's results: the first refusal by weight (quota, tokens per day and per
 * minute, requests, streams), waiting for the longest of all that refused; else the figures. A
 * call that is not metered is never refused.
 */
export function judge(
  l: KeyLimitsConfig,
  period: Period,
  r: (name: "rpm" | "tpm" | "tpd" | "quota" | "streams") => OpResult | undefined,
  metered: boolean,
): Verdict {
  const headers = rateLimitHeaders(figure(l.requestsPerMinute, r("rpm")), tokenFigure(l, r));
  // Most calls pass: the words below are written only for a refusal.
  if (!metered || gates.every((g) => r(g)?.allowed !== false)) return { ok: true, headers };
  const refusals: [LimitKind, OpResult | undefined, () => string][] = [
    [
      "quota",
      r("quota"),
      () =>
        `quota exhausted: ${l.quota?.tokens} Coze tokens per ${l.quota?.per} for this API key; it resets at ${new Date(period.endMs).toISOString()}`,
    ],
    ["tokens", r("tpd"), () => `rate limit reached: ${l.tokensPerDay} Coze tokens per day`],
    ["tokens", r("tpm"), () => `rate limit reached: ${l.tokensPerMinute} Coze tokens per minute`],
    ["requests", r("rpm"), () => `rate limit reached: ${l.requestsPerMinute} requests per minute`],
    ["streams", r("streams"), () => `too many streams open for this API key (${l.maxStreams})`],
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
