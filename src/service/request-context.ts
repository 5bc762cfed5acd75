import { randomUUID } from "node:crypto";
import { createContextKey } from "@connectrpc/connect";
import type { CallTrace, CallTracer } from "../coze/http.js";
import type { CoreContext } from "./core-context.js";

/**
 * What the gateway knows about the request being served, one per incoming request: passed
 * along explicitly (handler context values, call options), never through AsyncLocalStorage,
 * whose promise hooks cost every request dearly on Node 20 (issue #6).
 */
export interface RequestContext extends CallTrace {
  /** Our request id: returned to the caller as `x-request-id` and in the request's log line. */
  readonly id: string;
  /**
   * The W3C trace id of the request (the caller's `traceparent`, or ours when tracing is on), for
   * its log line; `undefined` when the request is not traced.
   */
  traceId: string | undefined;
  /** Where its Coze calls join the trace; set by the server with {@link traceId}. */
  tracer: CallTracer | undefined;
  /** The authenticated caller's key name, once known (never the key). */
  caller: string | undefined;
  /**
   * The client's address: the peer's, or behind a trusted proxy the right-most address of
   * `X-Forwarded-For` that is not a trusted proxy (`server.trusted_proxies`).
   */
  client: string | undefined;
  /** What the request is about, once the core saw it (`usage-meter.ts`); see {@link RequestUsage}. */
  usage: RequestUsage | undefined;
  /** Why the request failed, as the first layer that knew said it; see {@link noteFailure}. */
  failure: RequestFailure | undefined;
  /** Set by the server once the request was accounted (its log line and metrics): once only. */
  accounted: boolean;
  /**
   * What the key limiter keeps on the request (its stream slot until it finished); the limiter's
   * own. A field of every request, so that limited and other requests have one shape.
   */
  limitHold: object | undefined;
}

/** The model, route and Coze usage of one request, for its log line and the usage metrics. */
export interface RequestUsage {
  /** The model name as the caller gave it (`bot:{id}` or `workflow:{id}` for explicit ids). */
  model: string;
  /**
   * The model's name in metrics, from a bounded set: a configured or allow-listed name,
   * `workflow:*`-style for another dynamic name, `other` for a name no route serves.
   */
  metricModel: string;
  /** What the model runs, when a route serves it. */
  kind: string | undefined;
  /** The channel that served the request, once one did. */
  channel: string | undefined;
  /** Coze's token counts in the answers of this request (`input_count`, `output_count`). */
  promptTokens: number;
  completionTokens: number;
}

/** Why a request failed: a stable reason, the request field at fault, and its HTTP status. */
export interface RequestFailure {
  /** A stable code: `unknown_key`, `model_not_allowed`, `invalid_argument`, `coze_unavailable`… */
  reason: string;
  /** The request field at fault (`messages[1].role`), when one is. */
  field: string | undefined;
  /**
   * The status the failure has on the REST door when the response could no longer carry it (a
   * stream that failed after its 200 went out).
   */
  status: number | undefined;
}

/**
 * Notes why `ctx`'s request failed. The first reason noted is kept (the deepest layer that saw the
 * failure knows it best: the core's `model_not_allowed` over the door's `permission_denied`); a
 * status is added when none was noted yet.
 */
export function noteFailure(
  ctx: RequestContext | undefined,
  reason: string,
  field?: string,
  status?: number,
): void {
  if (ctx === undefined) return;
  const known = ctx.failure;
  if (known === undefined) ctx.failure = { reason, field, status };
  else if (known.status === undefined && status !== undefined) known.status = status;
}

/** Context key under which the server puts the {@link RequestContext} of each call. */
export const requestContextKey = createContextKey<RequestContext | undefined>(undefined, {
  description: "the request being served",
});

/** Where the Coze calls made for `ctx` note their log ids; `undefined` outside a server. */
export function traceOf(ctx: CoreContext): CallTrace | undefined {
  return ctx.values.get(requestContextKey);
}

/** A caller-supplied request id is kept when it is short and plain; anything else is replaced. */
const acceptable = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Where an incoming request (HTTP/1 or HTTP/2) carries its context: a property under a symbol of
 * this module, as Node's own modules tag their objects. (A WeakMap keyed by the request made
 * every young-generation collection process its entries: issue #6.)
 */
const contextOf = Symbol("coze-gateway.requestContext");

type Tagged = { [contextOf]?: RequestContext };

/**
 * Creates the context of an incoming request and ties it to `req`; `incoming` is the caller's
 * `x-request-id`, if any. Everything after reaches it through `req` ({@link requestOf}) or, in
 * Connect handlers and the REST shim, through the handler context ({@link requestContextKey}).
 */
export function beginRequest(req: object, incoming: string | undefined): RequestContext {
  const ctx: RequestContext = {
    id: incoming !== undefined && acceptable.test(incoming) ? incoming : randomUUID(),
    traceId: undefined,
    tracer: undefined,
    cozeLogIds: [],
    caller: undefined,
    client: undefined,
    usage: undefined,
    failure: undefined,
    accounted: false,
    limitHold: undefined,
  };
  (req as Tagged)[contextOf] = ctx;
  return ctx;
}

/** The context {@link beginRequest} tied to `req`, if any. */
export function requestOf(req: object): RequestContext | undefined {
  return (req as Tagged)[contextOf];
}
