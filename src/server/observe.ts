import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { GatewayMetrics, RequestLogFn } from "../observability/index.js";
import { type Door, doorFor } from "./doors.js";
import { type NodeRequest, type NodeResponse, requestPath } from "./http-response.js";
import { beginRequest, type RequestContext, requestContextKey } from "./request-context.js";

/** Where request outcomes go. */
export interface Observer {
  metrics: GatewayMetrics | undefined;
  /** Writes each request's line (`requestLogVia(log)` when the logger has no faster way). */
  requestLog: RequestLogFn;
}

/** An {@link Observer} of plain HTTP requests, which labels them by route. */
export interface HttpObserver extends Observer {
  /** The bounded route label of a request, e.g. {@link routeLabel} over the mounted doors. */
  label(method: string, path: string): string;
}

/** Response header carrying our request id (also accepted from the caller). */
export const requestIdHeader = "x-request-id";

/** A Connect procedure path: `/package.Service/Method`. */
export const procedurePath = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;

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

/** One line per finished request: ids and outcome, never a body, a header or a key. */
function record(
  o: Observer,
  ctx: RequestContext | undefined,
  method: string,
  code: string,
  started: number,
  serverError: boolean,
  aborted = false,
) {
  const seconds = (performance.now() - started) / 1000;
  o.metrics?.request(method, code, seconds);
  o.requestLog(serverError ? "warn" : "info", {
    requestId: ctx?.id,
    method,
    code,
    durationMs: Math.round(seconds * 1000),
    caller: ctx?.caller,
    cozeLogIds: ctx && ctx.cozeLogIds.length > 0 ? ctx.cozeLogIds : undefined,
    aborted,
  });
}

/**
 * Gives every incoming request its context (id, caller, Coze log ids; see `request-context.ts`),
 * returns the id as `x-request-id`, and accounts plain HTTP requests when they end; Connect
 * procedures are accounted by {@link createObserveInterceptor}, which knows their codes. The one
 * listener it puts on each response's `close` also calls `closed` (the connection tracker's).
 */
export function observeRequests(
  o: HttpObserver,
  handler: (req: NodeRequest, res: NodeResponse) => void,
): (req: NodeRequest, res: NodeResponse, closed: () => void) => void {
  return (req, res, closed) => {
    const incoming = req.headers[requestIdHeader];
    const ctx = beginRequest(req, typeof incoming === "string" ? incoming : undefined);
    res.setHeader(requestIdHeader, ctx.id);
    const path = requestPath(req);
    if (!procedurePath.test(path)) {
      const started = performance.now();
      const method = o.label(req.method ?? "GET", path);
      res.once("close", () => {
        closed();
        const aborted = !res.writableFinished;
        const status = aborted && res.statusCode < 400 ? 499 : res.statusCode;
        record(o, ctx, method, String(status), started, status >= 500, aborted);
      });
    } else res.once("close", closed);
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
    const done = (err: unknown) => {
      const code = err === undefined ? undefined : ConnectError.from(err).code;
      record(o, ctx, method, codeName(code), started, code !== undefined && serverSide.has(code));
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
          done(failure);
        }
      })(),
    };
  };
}
