import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  type Caller,
  callerKey,
  type RequestContext,
  requestContextKey,
} from "../service/index.js";
import type { NodeResponse } from "./node-types.js";
import { ShimHeaders } from "./shim-headers.js";

/** A handler context the shim owns: it must be released once the REST request is answered. */
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

const noTimeout = () => undefined;

/**
 * The handler context of an in-process call: a class, so that its lazy header getters are made
 * once rather than per request (an object literal with accessors is built the slow way). Its
 * headers are {@link ShimHeaders}, made only when a service touches them.
 */
class ShimContext implements HandlerContext {
  readonly service: DescMethod["parent"];
  readonly protocolName = "openai";
  readonly requestMethod = "POST";
  readonly url = "/v1/chat/completions";
  readonly timeoutMs = noTimeout;
  #requestHeader: ShimHeaders | undefined;
  responseHeaders: ShimHeaders | undefined;
  #responseTrailer: ShimHeaders | undefined;

  constructor(
    readonly method: DescMethod,
    readonly signal: AbortSignal,
    readonly values: ContextValues,
  ) {
    this.service = method.parent;
  }

  get requestHeader(): Headers {
    this.#requestHeader ??= new ShimHeaders();
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    this.responseHeaders ??= new ShimHeaders();
    return this.responseHeaders;
  }

  get responseTrailer(): Headers {
    this.#responseTrailer ??= new ShimHeaders();
    return this.#responseTrailer;
  }
}

/**
 * Creates the handler context for calling a service method in process, as the Connect router
 * would: the caller under `callerKey`, the request's context under `requestContextKey` (its
 * Coze log ids end up in the request's log line), and a signal that aborts when the client disconnects
 * (`res` closes before it was ended: the service then cancels the Coze work, issue #4 "a client
 * that disconnects aborts the upstream request and cancels the Coze chat") or when `shutdown`
 * aborts, with its reason (a stream passes the server's shutdown signal: it ends on shutdown like
 * Connect streams; a unary answer passes the end of the grace period). One context serves every
 * service call of a REST request.
 *
 * Built by hand rather than with `createHandlerContext`, which is the hot path's largest fixed
 * cost after the socket work (issue #6 profile): it makes three `Headers`, a deadline controller
 * and a linked controller with four listeners for every call. Here the signal has one controller,
 * the headers are made only when a service touches them, and the listener on `shutdown` (the
 * only long-lived signal) is removed on release. The signal is still aborted on release when
 * `shutdown` was given, so nothing tied to it outlives the response.
 */
export function createCallContext(
  method: DescMethod,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal | undefined,
  request: RequestContext | undefined,
): CallContext {
  const controller = new AbortController();
  const abort = (reason: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const onShutdown = () => abort(shutdown?.reason);
  if (shutdown?.aborted) abort(shutdown.reason);
  else shutdown?.addEventListener("abort", onShutdown, { once: true });
  const ctx = new ShimContext(
    method,
    controller.signal,
    createContextValues().set(callerKey, caller).set(requestContextKey, request),
  );
  const onClose = () => {
    if (!res.writableEnded) abort(clientGone);
  };
  res.once("close", onClose);
  return {
    ctx,
    withResponseHeaders(headers) {
      ctx.responseHeaders?.copyTo(headers);
      return headers;
    },
    release() {
      res.off("close", onClose);
      if (shutdown) {
        shutdown.removeEventListener("abort", onShutdown);
        abort(released);
      }
    },
  };
}
