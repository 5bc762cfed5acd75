import {
  absent,
  child,
  fail,
  type IntegerRule,
  integer,
  type LoadContext,
  type Place,
  required,
  section,
  text,
} from "./fields.js";
import type { ChannelLimitsConfig, KeyLimitsConfig } from "./gateway-config.js";

const keyLimitFields = [
  "requests_per_minute",
  "tokens_per_minute",
  "tokens_per_day",
  "max_streams",
  "quota",
];

/** Ranges of the per-key limits; the upper ends only keep the arithmetic exact. */
export const keyLimitRanges = {
  requestsPerMinute: { min: 1, max: 1_000_000 },
  tokensPerMinute: { min: 1, max: 1_000_000_000 },
  tokensPerDay: { min: 1, max: 1_000_000_000_000 },
  maxStreams: { min: 1, max: 1_000_000 },
  quotaTokens: { min: 1, max: 1_000_000_000_000 },
} as const;

/** Defaults of `channels[].limits`. */
export const channelLimitDefaults = { queue: 100, queueTimeoutMs: 30_000 } as const;

/** An integer in `rule`'s range, or `undefined` when absent. */
function optional(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  rule: Omit<IntegerRule, "fallback">,
): number | undefined {
  return absent(value) ? undefined : integer(ctx, place, value, { ...rule, fallback: 0 });
}

/**
 * Reads `api_keys[].limits`: requests and Coze tokens per minute, tokens per day, streams open at
 * once, and a `quota` of tokens per UTC `day` or `month` (default `month`). Every field is
 * optional; an absent or empty block is no limit.
 *
 * @throws ConfigError naming the key and the field: an unknown field, a number out of range, a
 *   quota without `tokens` or with a `per` other than `day` or `month`.
 */
export function readKeyLimits(
  ctx: LoadContext,
  place: Place,
  value: unknown,
): KeyLimitsConfig | undefined {
  if (absent(value)) return undefined;
  const map = section(ctx, place, value, keyLimitFields);
  const at = (key: string) => child(place, key);
  const limits: KeyLimitsConfig = {
    requestsPerMinute: optional(
      ctx,
      at("requests_per_minute"),
      map.requests_per_minute,
      keyLimitRanges.requestsPerMinute,
    ),
    tokensPerMinute: optional(
      ctx,
      at("tokens_per_minute"),
      map.tokens_per_minute,
      keyLimitRanges.tokensPerMinute,
    ),
    tokensPerDay: optional(
      ctx,
      at("tokens_per_day"),
      map.tokens_per_day,
      keyLimitRanges.tokensPerDay,
    ),
    maxStreams: optional(ctx, at("max_streams"), map.max_streams, keyLimitRanges.maxStreams),
    quota: readQuota(ctx, at("quota"), map.quota),
  };
  return Object.values(limits).every((v) => v === undefined) ? undefined : limits;
}

function readQuota(ctx: LoadContext, place: Place, value: unknown): KeyLimitsConfig["quota"] {
  if (absent(value)) return undefined;
  const map = section(ctx, place, value, ["tokens", "per"]);
  const tokensPlace = child(place, "tokens");
  const rule = `an integer from ${keyLimitRanges.quotaTokens.min} to ${keyLimitRanges.quotaTokens.max}`;
  required(ctx, tokensPlace, map.tokens, `${rule}: the tokens the key may use per period`);
  const tokens = integer(ctx, tokensPlace, map.tokens, {
    ...keyLimitRanges.quotaTokens,
    fallback: 0,
  });
  const perPlace = child(place, "per");
  const per = text(ctx, perPlace, map.per, "day or month") ?? "month";
  if (per !== "day" && per !== "month") fail(ctx, perPlace, "must be day or month");
  return { tokens, per };
}

/**
 * Reads `channels[].limits`: `max_concurrent` calls to Coze at once on this replica, and for the
 * calls over it a `queue` of that many waiting at most `queue_timeout_ms` each. Without
 * `max_concurrent` there is no cap (and the other two do nothing: a warning says so).
 *
 * @throws ConfigError naming the channel and the field for an unknown field or a number out of
 *   range.
 */
export function readChannelLimits(
  ctx: LoadContext,
  place: Place,
  value: unknown,
): ChannelLimitsConfig | undefined {
  if (absent(value)) return undefined;
  const map = section(ctx, place, value, ["max_concurrent", "queue", "queue_timeout_ms"]);
  const maxConcurrent = optional(ctx, child(place, "max_concurrent"), map.max_concurrent, {
    min: 1,
    max: 100_000,
  });
  const queue = integer(ctx, child(place, "queue"), map.queue, {
    min: 0,
    max: 100_000,
    fallback: channelLimitDefaults.queue,
  });
  const queueTimeoutMs = integer(ctx, child(place, "queue_timeout_ms"), map.queue_timeout_ms, {
    min: 1,
    max: 3_600_000,
    fallback: channelLimitDefaults.queueTimeoutMs,
  });
  if (maxConcurrent === undefined && (!absent(map.queue) || !absent(map.queue_timeout_ms))) {
    ctx.warnings.push(
      `${ctx.file}: ${place.path}: queue and queue_timeout_ms do nothing without max_concurrent`,
    );
  }
  return { maxConcurrent, queue, queueTimeoutMs };
}
