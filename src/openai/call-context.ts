import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
} from "@connectrpc/connect";
import { type Caller, callerKey } from "../service/index.js";
import type { NodeResponse } from "./node-types.js";

/** A handler context the shim owns: it must be released once the REST request is answered. */
export interface CallContext {
  readonly ctx: HandlerContext;
  /** Removes the context's listeners from the shutdown signal. Call once, when done. */
  release(): void;
}

/** The abort reason when the REST client goes away before its answer was written. */
export const clientGone = new ConnectError("the client closed the request", Code.Canceled);

const released = new ConnectError("request finished", Code.Canceled);

/**
 * Creates the handler context for calling a service method in process, as the Connect router
 * would: the caller under `callerKey`, and a signal that aborts when the client disconnects
 * (`res` closes before it was ended: the service then cancels the Coze work, issue #4 "a client
 * that disconnects aborts the upstream request and cancels the Coze chat") or when `shutdown`
 * aborts (streams only: they end on shutdown like Connect streams). One context serves every
 * service call of a REST request.
 */
export function createCallContext(
  method: DescMethod,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal | undefined,
): CallContext {
  const ctx = createHandlerContext({
    service: method.parent,
    method,
    protocolName: "openai",
    requestMethod: "POST",
    url: "/v1/chat/completions",
    shutdownSignal: shutdown,
    contextValues: createContextValues().set(callerKey, caller),
  });
  const onClose = () => {
    if (!res.writableEnded) ctx.abort(clientGone);
  };
  res.once("close", onClose);
  return {
    ctx,
    release() {
      res.off("close", onClose);
      // The linked abort controller removes its listeners from `shutdown` only when aborted.
      ctx.abort(released);
    },
  };
}
