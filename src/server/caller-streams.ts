import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { errorHeaders } from "../service/errors.js";
import { callerKey } from "./caller.js";
import { type RequestContext, requestContextKey } from "./request-context.js";

/** The message of every refusal for too many requests in flight; it names no key. */
export const tooManyStreamsMessage = "too many requests in flight for this API key";

/** Our error code for that refusal (`x-gateway-error`, and the REST body's `code`). */
export const tooManyStreamsCode = "too_many_streams";

/** Seconds a refused caller is told to wait (`Retry-After`): a stream slot frees any moment. */
export const tooManyStreamsRetryAfter = "1";

/**
 * Counts each API key's requests in flight (streams included) against one cap. A request is
 * counted on its {@link RequestContext}, so that the one place every response's end passes
 * through (the connection tracker's hook) can release it whatever ended it: an answer, an
 * error, a client gone.
 */
export interface CallerStreamLimit {
  /**
   * Counts the request of `ctx` for `caller`: false, counting nothing, when the caller already
   * has `max` in flight. A request is counted at most once.
   */
  acquire(ctx: RequestContext, caller: string): boolean;
  /** Releases what {@link acquire} counted for `ctx`; does nothing when it counted nothing. */
  release(ctx: RequestContext | undefined): void;
  /** Requests of `caller` counted now. */
  inFlight(caller: string): number;
}

/** Where a request context notes the caller it is counted for. */
const countedFor = Symbol("coze-gateway.countedFor");
type Tagged = { [countedFor]?: string | undefined };

/** Creates a {@link CallerStreamLimit} allowing `max` requests in flight per caller. */
export function createCallerStreamLimit(max: number): CallerStreamLimit {
  // One entry per caller that ever had a request: bounded by the configured keys.
  const counts = new Map<string, number>();
  return {
    acquire(ctx, caller) {
      const tagged = ctx as Tagged;
      if (tagged[countedFor] !== undefined) return true;
      const n = counts.get(caller) ?? 0;
      if (n >= max) return false;
      counts.set(caller, n + 1);
      tagged[countedFor] = caller;
      return true;
    },
    release(ctx) {
      const tagged = ctx as Tagged | undefined;
      const caller = tagged?.[countedFor];
      if (tagged === undefined || caller === undefined) return;
      tagged[countedFor] = undefined;
      counts.set(caller, (counts.get(caller) ?? 1) - 1);
    },
    inFlight(caller) {
      return counts.get(caller) ?? 0;
    },
  };
}

/**
 * Counts every Connect call against the caller's cap; runs after authentication (it reads the
 * caller from the handler context). A caller at the cap gets `Code.ResourceExhausted` with
 * `retry-after` before the service runs. Releasing is not this interceptor's job: a stream ends
 * in too many ways (the client resets it before its first message, say) for a `finally` here to
 * see them all; the server releases when the response closes.
 */
export function createStreamLimitInterceptor(limit: CallerStreamLimit): Interceptor {
  // Not async: on the way in it adds no promise to the call (issue #6).
  return (next) => (req) => {
    const ctx = req.contextValues.get(requestContextKey);
    const caller = req.contextValues.get(callerKey);
    if (ctx !== undefined && caller !== undefined && !limit.acquire(ctx, caller.name)) {
      return Promise.reject(
        new ConnectError(tooManyStreamsMessage, Code.ResourceExhausted, {
          [errorHeaders.retryAfter]: tooManyStreamsRetryAfter,
          [errorHeaders.code]: tooManyStreamsCode,
        }),
      );
    }
    return next(req);
  };
}
