import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { type KeyLimiter, retryAfterSeconds, type Verdict } from "../limits/index.js";
import { type GatewayError, toConnectError } from "../service/index.js";
import { callerKey } from "./caller.js";
import type { Refusal, RefusalCode } from "./doors.js";
import { addHeaders } from "./gateway-response.js";
import type { NodeResponse } from "./http-response.js";
import { requestContextKey } from "./request-context.js";

/**
 * Context key under which the server puts the Node response of each Connect call: the limits
 * interceptor writes a key's figures on it directly.
 */
export const nodeResponseKey = createContextKey<NodeResponse | undefined>(undefined, {
  description: "the Node response of the call",
});

/**
 * Checks every Connect call against its key's limits (issue 15); runs after authentication. A
 * refused call gets `Code.ResourceExhausted` (`Code.Unavailable` when the limits cannot be
 * checked and fail closed) with `retry-after` and the key's `x-ratelimit-*` figures as metadata;
 * every answer of a limited key, success or error, carries the figures. A key without limits
 * passes without a promise.
 *
 * An admitted call's figures go on its Node response before it runs, as on REST: Node sends
 * them with whatever headers Connect writes, an answer's or an error's (gRPC: the response
 * headers, which a client's error metadata includes). Set on Connect's own response headers or
 * error metadata instead, each would pass through a `Headers` object and its conversion to
 * Node's headers: on Connect unary that was most of what a limited call cost (BENCHMARKS.md).
 */
export function createKeyLimitsInterceptor(limiter: KeyLimiter): Interceptor {
  return (next) => (req) => {
    const ctx = req.contextValues.get(requestContextKey);
    const caller = req.contextValues.get(callerKey);
    const verdict = ctx && caller && limiter.admit(ctx, caller.name, true);
    if (verdict === undefined) return next(req);
    const proceed = (v: Verdict) => {
      if (!v.ok) return Promise.reject(toConnectError(v.error));
      const res = req.contextValues.get(nodeResponseKey);
      if (res !== undefined && !res.headersSent) addHeaders(res, v.headers);
      return next(req);
    };
    return verdict instanceof Promise ? verdict.then(proceed) : proceed(verdict);
  };
}

/** The REST refusal of a limit's error, worded by the door (OpenAI's codes under `/v1`). */
export function limitRefusal(err: GatewayError): Refusal {
  const code: RefusalCode =
    err.code === "insufficient_quota"
      ? "quota_exhausted"
      : err.code === "rate_limit_exceeded"
        ? err.limit?.kind === "tokens"
          ? "tokens_limited"
          : "requests_limited"
        : err.code === "too_many_streams"
          ? "too_many_streams"
          : "unavailable";
  return {
    status: code === "unavailable" ? 503 : 429,
    code,
    message: err.message,
    headers: { ...err.limit?.headers, "retry-after": retryAfterSeconds(err.retryAfterMs ?? 1000) },
  };
}
