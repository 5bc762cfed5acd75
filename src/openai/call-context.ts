import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  type Caller,
  callerKey,
  type RequestContext,
  requestContextKey,
} from "../service/index.js";
import type { NodeResponse } from "./node-types.js";

/** A handler context the door owns: it must be released once the REST request is answered. */
export interface CallContext {
  readonly ctx: HandlerContext;
  /**
   * Adds the response headers the services set (`x-gateway-channel`) to `headers`, which is
   * returned: they go on the REST response like on a Connect one.
   */
  withResponseHeaders(headers: Record<string, string>): Record<string, string>;
  /** Detaches the context from the response and the shutdown signal. Call once, when done. */
  release(): void;
}

/** The abort reason when the REST client goes away before its answer was written. */
export const clientGone = new ConnectError("the client closed the request", Code.Canceled);

const released = new ConnectError("request finished", Code.Canceled);

/**
 * The handler context for calling a service method from a REST door, made by Connect's own
 * `createHandlerContext`, as its router would: the caller under `callerKey`, the request's
 * context under `requestContextKey` (its Coze log ids end up in the request's log line), and a
 * signal that aborts when the client disconnects (`res` closes before it was ended: the service
 * then cancels the Coze work, issue #4) or when `shutdown` aborts, with its reason (a stream
 * passes the server's shutdown signal; a unary answer the end of the grace period). On release
 * the context is aborted, which also removes its listener from `shutdown`.
 */
export function createCallContext(
  method: DescMethod,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal | undefined,
  request: RequestContext | undefined,
): CallContext {
  const ctx = createHandlerContext({
    service: method.parent,
    method,
    protocolName: "openai",
    requestMethod: "POST",
    url: method.name,
    shutdownSignal: shutdown,
    contextValues: createContextValues().set(callerKey, caller).set(requestContextKey, request),
  });
  const onClose = () => {
    if (!res.writableEnded) ctx.abort(clientGone);
  };
  res.once("close", onClose);
  return {
    ctx,
    withResponseHeaders(headers) {
      ctx.responseHeader.forEach((value, name) => {
        headers[name] = value;
      });
      return headers;
    },
    release() {
      res.off("close", onClose);
      ctx.abort(released);
    },
  };
}
