import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import {
  type Caller,
  type CoreContext,
  callerKey,
  type RequestContext,
  requestContextKey,
} from "../service/index.js";
import type { NodeResponse } from "./node-types.js";

/** The core context of one REST call: release it once the REST request is answered. */
export interface CallContext {
  readonly ctx: CoreContext;
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

/**
 * The context of a core call made by a REST door: the caller under `callerKey`, the request's
 * context under `requestContextKey` (its Coze log ids end up in the request's log line), the
 * response headers the core sets, and a signal that aborts when the client disconnects (`res`
 * closes before it was ended: the core then cancels the Coze work, issue #4) or when `shutdown`
 * aborts, with its reason (a stream passes the server's shutdown signal; a unary answer the end
 * of the grace period). One controller and one listener on the response, both released.
 */
export function createCallContext(
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal | undefined,
  request: RequestContext | undefined,
): CallContext {
  const controller = new AbortController();
  const abort = (reason: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const unfollow = shutdown === undefined ? undefined : follow(shutdown, abort);
  const onClose = () => {
    if (!res.writableEnded) abort(clientGone);
  };
  res.once("close", onClose);
  let headers: Record<string, string> | undefined;
  const ctx: CoreContext = {
    signal: controller.signal,
    values: createContextValues().set(callerKey, caller).set(requestContextKey, request),
    responseHeader: {
      set(name, value) {
        headers ??= {};
        headers[name.toLowerCase()] = value;
      },
    },
  };
  return {
    ctx,
    withResponseHeaders(out) {
      if (headers !== undefined) Object.assign(out, headers);
      return out;
    },
    release() {
      res.off("close", onClose);
      unfollow?.();
    },
  };
}

/** The calls following each server signal; see {@link follow}. */
const followers = new WeakMap<AbortSignal, Set<(reason: unknown) => void>>();

/**
 * Calls `onAbort` with `signal`'s reason when it aborts (at once if it has), until the returned
 * function is called. Every call of a door follows the same two server signals: they get one
 * listener each, and a call only joins and leaves a set. A listener per call would make each
 * call add and remove one on a signal shared by all of them (BENCHMARKS.md, issue 13's round).
 */
function follow(signal: AbortSignal, onAbort: (reason: unknown) => void): () => void {
  if (signal.aborted) {
    onAbort(signal.reason);
    return () => {};
  }
  let set = followers.get(signal);
  if (set === undefined) {
    const created = new Set<(reason: unknown) => void>();
    set = created;
    followers.set(signal, created);
    signal.addEventListener(
      "abort",
      () => {
        for (const f of created) f(signal.reason);
        created.clear();
      },
      { once: true },
    );
  }
  const joined = set;
  joined.add(onAbort);
  return () => joined.delete(onAbort);
}
