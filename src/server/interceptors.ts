import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextKey,
  type Interceptor,
} from "@connectrpc/connect";
import type { LogFn } from "../observability/index.js";
import { errorHeaders, runCutError, withoutSentHeaders } from "../service/errors.js";
import { parseBearerToken } from "./bearer.js";
import { type Caller, callerKey } from "./caller.js";
import { type CallerLookup, connectionKey, createCallerLookup } from "./caller-lookup.js";
import { noteFailure, requestContextKey } from "./request-context.js";

/** The message of every Unauthenticated error; it never says which part was wrong. */
export const unauthenticatedMessage = "missing or invalid API key";

/** The message for calls that arrive, or are still streaming, while the server shuts down. */
export const shuttingDownMessage = "server is shutting down";

const noop = () => {};

/**
 * Requires `Authorization: Bearer <key>` on every call and puts the caller returned by
 * `authenticate` into the handler context under `key` (default {@link callerKey}), through
 * `lookup`, which remembers a connection's accepted header (the connection is the context value
 * under `connectionKey`; the server shares one lookup between Connect and the doors). A missing
 * or unknown key fails with `Code.Unauthenticated` before the service runs. The key itself is
 * never logged.
 */
export function createAuthInterceptor(
  authenticate: (key: string) => Caller | undefined,
  log: LogFn,
  key: ContextKey<Caller | undefined> = callerKey,
  lookup: CallerLookup = createCallerLookup(authenticate),
): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization") ?? undefined;
    // A call made in process has no connection: a fresh object checks it on its own.
    const caller = lookup(req.contextValues.get(connectionKey) ?? {}, header);
    if (caller === undefined) {
      const reason = parseBearerToken(header) === undefined ? "missing" : "unknown";
      noteFailure(req.contextValues.get(requestContextKey), `${reason}_key`);
      log("warn", "rejected a call without a valid API key", {
        procedure: `${req.service.typeName}/${req.method.name}`,
        reason,
      });
      throw new ConnectError(unauthenticatedMessage, Code.Unauthenticated);
    }
    req.contextValues.set(key, caller);
    const request = req.contextValues.get(requestContextKey);
    if (request) request.caller = caller.name;
    return next(req);
  };
}

/** Refuses new calls with `Code.Unavailable` once `draining()` is true, so clients retry elsewhere. */
export function createDrainInterceptor(draining: () => boolean): Interceptor {
  return (next) => async (req) => {
    if (draining()) throw new ConnectError(shuttingDownMessage, Code.Unavailable);
    return next(req);
  };
}

/**
 * Ends every server stream as soon as `signal` aborts, with the abort reason as the error (the
 * server aborts with `Code.Unavailable`), even when the service is blocked waiting for upstream
 * data. Connect then aborts the handler's `ctx.signal` with the same reason, which lets the
 * service release its upstream work. Unary calls are not touched.
 */
export function createStreamCutoffInterceptor(signal: AbortSignal): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    return { ...res, message: cutOffOnAbort(res.message, signal, res.header) };
  };
}

/**
 * The error a cut stream ends with: the abort reason, naming the workflow run the stream was
 * about when the service named one in the response headers (issue 16: it goes on at Coze).
 */
function cutReason(signal: AbortSignal, header: Headers): unknown {
  const executeId = header.get(errorHeaders.executeId);
  const reason: unknown = signal.reason;
  if (!executeId || !(reason instanceof ConnectError)) return reason;
  return withoutSentHeaders(runCutError(reason, executeId), header);
}

async function* cutOffOnAbort<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal,
  header: Headers,
): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let onAbort = noop;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(cutReason(signal, header));
  });
  // Marks the rejection as handled: a stream that ends before shutdown never races it.
  aborted.catch(noop);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    for (;;) {
      const result = await Promise.race([it.next(), aborted]);
      if (result.done === true) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // The source may still be blocked in next(); return() is queued behind it and must not be
    // awaited, or the stream would not end promptly.
    if (!finished) it.return?.().catch(noop);
  }
}

/**
 * Lets `ConnectError`s through unchanged and turns anything else a service throws into
 * `Code.Internal` with the message "internal error", so that no upstream text, token or key
 * reaches a client. An error thrown because the call was aborted (deadline, shutdown, client
 * gone) is reported with the abort reason instead. Unexpected errors are logged with their name
 * and `code` only, never their message.
 */
export function createErrorInterceptor(log: LogFn): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const safe = (e: unknown): ConnectError => {
      if (e instanceof ConnectError) return e;
      if (req.signal.aborted && req.signal.reason instanceof ConnectError) return req.signal.reason;
      if (!req.signal.aborted) {
        log("error", "service failed with an unexpected error", {
          procedure,
          error: e instanceof Error ? e.name : typeof e,
          code: errorCode(e),
        });
      }
      return new ConnectError("internal error", Code.Internal);
    };
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mapErrors(res.message, safe) };
    } catch (e) {
      throw safe(e);
    }
  };
}

async function* mapErrors<T>(
  source: AsyncIterable<T>,
  map: (e: unknown) => ConnectError,
): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (e) {
    throw map(e);
  }
}

function errorCode(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null || !("code" in e)) return undefined;
  return typeof e.code === "string" ? e.code : undefined;
}

/**
 * Wraps `router` so that every service registered through it runs `interceptors` first, even
 * when it is registered with options of its own (per-service options replace the router's).
 */
export function withInterceptors(
  router: ConnectRouter,
  interceptors: Interceptor[],
): ConnectRouter {
  type HandlerOptions = Parameters<ConnectRouter["service"]>[2];
  const merge = (o: HandlerOptions): HandlerOptions => ({
    ...o,
    interceptors: [...interceptors, ...(o?.interceptors ?? [])],
  });
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, o) {
      router.service(service, implementation, merge(o));
      return wrapped;
    },
    rpc(method, impl, o) {
      router.rpc(method, impl, merge(o));
      return wrapped;
    },
  };
  return wrapped;
}
