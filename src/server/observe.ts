import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type {
  GatewayMetrics,
  RequestLine,
  RequestLogFn,
  RequestOutcome,
  Tracing,
} from "../observability/index.js";
import { type Door, doorFor } from "./doors.js";
import { addHeader } from "./gateway-response.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";
import { requestPath } from "./http-response.js";
import {
  beginRequest,
  type RequestContext,
  requestContextKey,
  requestOf,
} from "./request-context.js";

/** Where request outcomes go. */
export interface Observer {
  metrics: GatewayMetrics | undefined;
  /** Writes each request's line (`requestLogVia(log)` when the logger has no faster way). */
  requestLog: RequestLogFn;
  /**
   * Reads each request's `traceparent` into its context and, when recording, gives it a span
   * that ends with its line (`createTracing`). Default none: `traceparent` is not read.
   */
  tracing?: Tracing;
}

/** An {@link Observer} of plain HTTP requests, which labels them by route. */
export interface HttpObserver extends Observer {
  /**
   * The bounded label of a request, e.g. {@link routeLabel} over the mounted doors; for a
   * procedure path, the procedure when the server serves it.
   */
  label(method: string, path: string): string;
  /** The client's address (`createClientAddress`); default the peer's. */
  clientAddress?: (req: NodeRequest) => string | undefined;
}

/** Response header carrying our request id (also accepted from the caller). */
export const requestIdHeader = "x-request-id";

/** Connect codes that are the gateway's or Coze's trouble rather than the caller's. */
const serverSide = new Set<Code>([
  Code.Internal,
  Code.Unknown,
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.DataLoss,
]);

/**
 * The bounded label of a plain HTTP request for metrics and log lines: the label of the door
 * that owns the path, the probes by name, everything else `other`.
 */
export function routeLabel(doors: readonly Door[], method: string, path: string): string {
  const door = doorFor(doors, path);
  if (door !== undefined) return door.label(method, path);
  return path === "/healthz" || path === "/readyz" ? `${method} ${path}` : `${method} other`;
}

function codeName(code: Code | undefined): string {
  return code === undefined
    ? "ok"
    : Code[code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/** Reasons of HTTP statuses nobody noted a reason for (a refusal Connect made by itself). */
const statusReasons: Record<number, string> = {
  400: "bad_request",
  404: "not_found",
  405: "method_not_allowed",
  408: "request_timeout",
  413: "too_large",
  415: "unsupported_media_type",
  499: "canceled",
};

/** How a plain HTTP request ended, from its status. */
function httpOutcome(status: number): RequestOutcome {
  if (status === 499) return "canceled";
  if (status >= 500) return "error";
  return status >= 400 ? "client_error" : "ok";
}

/** How an RPC ended, from its code. */
function rpcOutcome(code: Code | undefined): RequestOutcome {
  if (code === undefined) return "ok";
  if (code === Code.Canceled) return "canceled";
  return serverSide.has(code) ? "error" : "client_error";
}

/**
 * One line per finished request, and its metrics: ids, key name, client address, model, channel,
 * Coze usage, outcome and reason; never a body, a header or a key. Called once per request: the
 * caller claims the request through `ctx.accounted` first.
 */
function record(
  o: Observer,
  ctx: RequestContext | undefined,
  method: string,
  code: string,
  outcome: RequestOutcome,
  fallbackReason: string,
  started: number,
  aborted = false,
) {
  const seconds = (performance.now() - started) / 1000;
  const usage = ctx?.usage;
  const failed = outcome !== "ok";
  const reason = failed ? (ctx?.failure?.reason ?? fallbackReason) : undefined;
  const { metrics } = o;
  if (metrics !== undefined) {
    metrics.request(method, code, seconds);
    if (ctx?.caller !== undefined) {
      metrics.keyRequest(
        ctx.caller,
        usage?.metricModel ?? "",
        outcome,
        usage?.promptTokens ?? 0,
        usage?.completionTokens ?? 0,
      );
    }
    if (reason !== undefined) metrics.failure(reason);
  }
  const line: RequestLine = {
    requestId: ctx?.id,
    traceId: ctx?.traceId,
    method,
    code,
    outcome,
    durationMs: Math.round(seconds * 1000),
    caller: ctx?.caller,
    client: ctx?.client,
    model: usage?.model || undefined,
    kind: usage?.kind,
    channel: usage?.channel,
    promptTokens: usage?.promptTokens,
    completionTokens: usage?.completionTokens,
    reason,
    field: failed ? ctx?.failure?.field : undefined,
    cozeLogIds: ctx && ctx.cozeLogIds.length > 0 ? ctx.cozeLogIds : undefined,
    aborted,
  };
  o.requestLog(outcome === "error" ? "warn" : "info", line);
  if (ctx?.tracer !== undefined) o.tracing?.end(ctx.tracer, line);
}

/**
 * `doors` with a span around each `key` door's handling when `tracing` records (a child of the
 * request's span, parent of its Coze calls); `doors` themselves otherwise. The span fails when
 * the handler throws or answers 5xx.
 */
export function traceDoors(doors: readonly Door[], tracing: Tracing | undefined): readonly Door[] {
  if (tracing?.recording !== true) return doors;
  return doors.map((door): Door => {
    if (door.auth === "public") return door;
    return {
      ...door,
      handle(req, res, call) {
        const tracer = requestOf(req)?.tracer;
        const end =
          tracer &&
          tracing.enter(tracer, `door ${door.label(req.method ?? "GET", requestPath(req))}`);
        if (end === undefined) return door.handle(req, res, call);
        let handled: boolean | Promise<boolean>;
        try {
          handled = door.handle(req, res, call);
        } catch (err) {
          end(true);
          throw err;
        }
        const ended = (answered: boolean) => {
          end(res.statusCode >= 500);
          return answered;
        };
        if (typeof handled === "boolean") return ended(handled);
        return handled.then(ended, (err: unknown) => {
          end(true);
          throw err;
        });
      },
    };
  });
}

/** The peer's address, IPv4-mapped IPv6 (`::ffff:10.0.0.1`) written as IPv4. */
export function peerAddress(req: NodeRequest): string | undefined {
  const address = req.socket?.remoteAddress;
  return address?.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * Gives every incoming request its context (id, caller, client address, Coze log ids; see
 * `request-context.ts`), returns the id as `x-request-id`, and accounts plain HTTP requests when
 * they end. Connect procedures are accounted by {@link createObserveInterceptor}, which knows
 * their codes; a procedure path that no interceptor saw (an unknown procedure, a request Connect
 * refused before the service, such as a wrong content type) is accounted here by its status, so
 * every request gets its line. The one listener it puts on each response's `close` also calls
 * `closed` (the connection tracker's).
 */
export function observeRequests(
  o: HttpObserver,
  handler: (req: NodeRequest, res: NodeResponse) => void,
): (req: NodeRequest, res: NodeResponse, closed: () => void) => void {
  const clientAddress = o.clientAddress ?? peerAddress;
  const { tracing } = o;
  return (req, res, closed) => {
    const incoming = req.headers[requestIdHeader];
    const ctx = beginRequest(req, typeof incoming === "string" ? incoming : undefined);
    ctx.client = clientAddress(req);
    const trace = tracing?.begin(req.headers);
    if (trace !== undefined) {
      ctx.traceId = trace.traceId;
      ctx.tracer = trace;
    }
    addHeader(res, requestIdHeader, ctx.id);
    const started = performance.now();
    res.once("close", () => {
      closed();
      // Claimed by the procedure's interceptor, or accounted already.
      if (ctx.accounted) return;
      ctx.accounted = true;
      const aborted = !res.writableFinished;
      let status = aborted && res.statusCode < 400 ? 499 : res.statusCode;
      // A REST stream whose 200 went out before it failed: its error's status, not a success.
      const late = ctx.failure?.status;
      if (status < 400 && late !== undefined) status = late;
      const method = o.label(req.method ?? "GET", requestPath(req));
      const fallback = statusReasons[status] ?? `http_${status}`;
      record(o, ctx, method, String(status), httpOutcome(status), fallback, started, aborted);
    });
    handler(req, res);
  };
}

/**
 * Accounts each RPC: metrics by procedure and code, open server streams, and one log line when
 * the call ends (a stream ends when its last message was sent or it failed).
 */
export function createObserveInterceptor(o: Observer): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const started = performance.now();
    const ctx = req.contextValues.get(requestContextKey);
    // This call's line is the interceptor's, even when its response closes first.
    if (ctx !== undefined) ctx.accounted = true;
    const stage = ctx?.tracer && o.tracing?.enter(ctx.tracer, `rpc ${method}`);
    const done = (err: unknown) => {
      stage?.(err !== undefined);
      const code = err === undefined ? undefined : ConnectError.from(err).code;
      const name = codeName(code);
      record(o, ctx, method, name, rpcOutcome(code), name, started);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      done(err);
      throw err;
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    const endStream = o.metrics?.streamOpened("grpc");
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let failure: unknown;
        try {
          yield* messages;
        } catch (err) {
          failure = err ?? new ConnectError("stream failed", Code.Unknown);
          throw err;
        } finally {
          endStream?.();
          // A stream that stopped because its call was aborted (the client went away, a
          // deadline, shutdown) did not end well, even when the service returned quietly.
          if (failure === undefined && req.signal.aborted) {
            failure = ConnectError.from(req.signal.reason, Code.Canceled);
          }
          done(failure);
        }
      })(),
    };
  };
}
