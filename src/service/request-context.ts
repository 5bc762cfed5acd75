import { randomUUID } from "node:crypto";
import { createContextKey } from "@connectrpc/connect";
import type { CallTrace } from "../coze/http.js";
import type { Usage } from "../coze/wire.js";
import type { CoreContext } from "./core-context.js";

/**
 * What the gateway knows about the request being served, one per incoming request: passed
 * along explicitly (handler context values, call options), never through AsyncLocalStorage,
 * whose promise hooks cost every request dearly on Node 20 (issue #6).
 */
export interface RequestContext extends CallTrace {
  /** Our request id: returned to the caller as `x-request-id` and in the request's log line. */
  readonly id: string;
  /** The authenticated caller's key name, once known (never the key). */
  caller: string | undefined;
  /** Coze tokens the request's calls used, as Coze reported them; added up by the core. */
  usage: RequestUsage | undefined;
}

/** Coze tokens used: prompt (`input`), completion (`output`) and Coze's total. */
export interface RequestUsage {
  input: number;
  output: number;
  total: number;
}

/** Context key under which the server puts the {@link RequestContext} of each call. */
export const requestContextKey = createContextKey<RequestContext | undefined>(undefined, {
  description: "the request being served",
});

/** Where the Coze calls made for `ctx` note their log ids; `undefined` outside a server. */
export function traceOf(ctx: CoreContext): CallTrace | undefined {
  return ctx.values.get(requestContextKey);
}

/**
 * Adds what Coze reported a call of the request used to the request's usage (its limits count
 * it once the request ended). No request context (in-process calls): nothing to add to.
 */
export function noteUsage(ctx: CoreContext, usage: Usage | undefined): void {
  const request = ctx.values.get(requestContextKey);
  if (request === undefined || usage === undefined) return;
  const total = usage.tokenCount || usage.inputCount + usage.outputCount;
  if (request.usage === undefined) {
    request.usage = { input: usage.inputCount, output: usage.outputCount, total };
    return;
  }
  request.usage.input += usage.inputCount;
  request.usage.output += usage.outputCount;
  request.usage.total += total;
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
    cozeLogIds: [],
    caller: undefined,
    usage: undefined,
  };
  (req as Tagged)[contextOf] = ctx;
  return ctx;
}

/** The context {@link beginRequest} tied to `req`, if any. */
export function requestOf(req: object): RequestContext | undefined {
  return (req as Tagged)[contextOf];
}
