import type { DescService } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext, ServiceImpl } from "@connectrpc/connect";

/**
 * What a core method needs of its call, whichever door it came through: the call's signal (it
 * aborts when the caller goes away, a deadline passes or the server stops), its context values
 * (the caller under `callerKey`, the request's context under `requestContextKey`), and where to
 * name the channel that served it. Connect's `HandlerContext` is one; a REST door makes its own
 * from the HTTP request, without pretending to be a Connect call.
 */
export interface CoreContext {
  readonly signal: AbortSignal;
  readonly values: ContextValues;
  readonly responseHeader: Pick<Headers, "set">;
}

/**
 * The core's implementation of a contract service: a `ServiceImpl` whose methods take a
 * {@link CoreContext}. It is a `ServiceImpl` too (a `HandlerContext` is a `CoreContext`), so the
 * Connect door registers it as it is.
 */
export type CoreImpl<S extends DescService> = {
  [K in keyof ServiceImpl<S>]: ServiceImpl<S>[K] extends (
    request: infer I,
    context: HandlerContext,
  ) => infer O
    ? (request: I, context: CoreContext) => O
    : never;
};
