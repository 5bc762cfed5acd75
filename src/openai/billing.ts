import type { Caller } from "../service/index.js";
import type { NodeResponse } from "./node-types.js";
import { OpenAiError } from "./openai-error.js";
import { sendJsonText, sendOpenAiError } from "./respond.js";

/** A key's usage and quota, as the billing endpoints report them. */
export interface BillingFigures {
  /** The key's quota in Coze tokens per period; `undefined` when it has none. */
  quotaTokens: number | undefined;
  /** Coze tokens used in the quota's period (this UTC month without a quota). */
  usedTokens: number;
}

/**
 * Reads the figures of the calling key, and only its own.
 * @throws anything when they cannot be read (the door answers 503).
 */
export type BillingSource = (caller: Caller) => Promise<BillingFigures>;

/** The paths of OpenAI's legacy billing endpoints, which new-api serves and front-ends call. */
export const billingPaths = {
  subscription: "/v1/dashboard/billing/subscription",
  usage: "/v1/dashboard/billing/usage",
} as const;

/** What new-api reports as the limit of a key without quota (its `UnlimitedQuota`). */
export const unlimitedAmount = 100_000_000;

/**
 * Answers `GET /v1/dashboard/billing/subscription` or `GET /v1/dashboard/billing/usage` for
 * `caller`, in the shapes new-api serves (controller/billing.go, quota shown in tokens): the
 * subscription's `hard_limit_usd` (and `soft_limit_usd`, `system_hard_limit_usd`) is the key's
 * quota in Coze tokens, or 100000000 without one; `access_until` is 0 (keys do not expire);
 * the usage's `total_usage` is the tokens used in the quota's period times 100 (the legacy
 * field counts cents), so a front-end's `hard_limit_usd - total_usage / 100` is what is left.
 * Like new-api, `start_date` and `end_date` are not read: the figures are the current period's.
 */
export async function serveBilling(
  path: string,
  res: NodeResponse,
  caller: Caller,
  source: BillingSource,
): Promise<void> {
  let figures: BillingFigures;
  try {
    figures = await source(caller);
  } catch {
    sendOpenAiError(
      res,
      new OpenAiError(
        503,
        {
          message: "usage figures are unavailable now: the shared state store is unreachable",
          type: "server_error",
          code: "unavailable",
          param: null,
        },
        { "retry-after": "1" },
      ),
    );
    return;
  }
  if (path === billingPaths.subscription) {
    const amount = figures.quotaTokens ?? unlimitedAmount;
    sendJsonText(
      res,
      200,
      JSON.stringify({
        object: "billing_subscription",
        has_payment_method: true,
        soft_limit_usd: amount,
        hard_limit_usd: amount,
        system_hard_limit_usd: amount,
        access_until: 0,
      }),
    );
    return;
  }
  sendJsonText(res, 200, JSON.stringify({ object: "list", total_usage: figures.usedTokens * 100 }));
}
