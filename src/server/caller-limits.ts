import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { type KeyLimiter, retryAfterSeconds, type Verdict } from "../limits/index.js";
import { type GatewayError, toConnectError } from "../service/index.js";
import { callerKey } from "./caller.js";
import type { Refusal, RefusalCode } from "./doors.js";
import type { NodeResponse } from "./http-response.js";
import { requestContextKey } from "./request-context.js";

/**
 * Checks every Connect call against its key's limits (issue 15); runs after authentication. A
 * refused call gets `Code.ResourceExhausted` (`Code.Unavailable` when the limits cannot be
 * checked and fail closed) with `retry-after` and the key's `x-ratelimit-*` figures as metadata;
 * every answer of a limited key, success or error, carries the figures. A key without limits
 * passes without a promise.
 */
export function createKeyLimitsInterceptor(limiter: KeyLimiter): Interceptor {
  return (next) => (req) => {
    const ctx = req.contextValues.get(requestContextKey);
    const caller = req.contextValues.get(callerKey);
    const verdict = ctx && caller && limiter.admit(ctx, caller.name, true);
    if (verdict === undefined) return next(req);
    // Promise callbacks rather than an async function: one promise fewer per call.
    const proceed = (v: Verdict) => {
      if (!v.ok) return Promise.reject(toConnectError(v.error));
      return next(req).then(
        (res) => {
          for (const name in v.headers) res.header.set(name, v.headers[name] as string);
          return res;
        },
        (err: unknown) => {
          if (err instanceof ConnectError) {
            for (const name in v.headers) err.metadata.set(name, v.headers[name] as string);
          }
          throw err;
        },
      );
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

/** Puts a limited key's figures on a REST response before its handler writes it. */
export function setLimitHeaders(res: NodeResponse, headers: Readonly<Record<string, string>>) {
  for (const name in headers) res.setHeader(name, headers[name] as string);
}
