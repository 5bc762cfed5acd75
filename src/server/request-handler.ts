import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { parseBearerToken } from "./bearer.js";
import type { Caller } from "./caller.js";
import {
  type CallerStreamLimit,
  tooManyStreamsCode,
  tooManyStreamsMessage,
  tooManyStreamsRetryAfter,
} from "./caller-streams.js";
import type { CorsPolicy } from "./cors.js";
import type { HealthService } from "./health.js";
import {
  type NodeRequest,
  type NodeResponse,
  requestPath,
  sendError,
  sendJson,
} from "./http-response.js";
import { type LogFn, shuttingDownMessage, unauthenticatedMessage } from "./interceptors.js";
import { procedurePath } from "./observe.js";
import { requestOf } from "./request-context.js";

/**
 * A plain HTTP handler for paths Connect does not serve; `true` when it answered. `shutdown`
 * aborts when the server starts shutting down (open streams should end then); `hardStop` when
 * the grace period is over (unary answers still under way should end then, with the reason's
 * `Code.Unavailable` as a 503: their connections are closed right after).
 */
export type HttpRouteHandler = (
  req: NodeRequest,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal,
  hardStop: AbortSignal,
) => Promise<boolean> | boolean;

/** Options of {@link createHttpRoutes}. */
export interface HttpRoutesOptions {
  /** The handler to try; without one every path is 404 (after authentication under /v1/). */
  http: HttpRouteHandler | undefined;
  authenticate: (key: string) => Caller | undefined;
  /** Requests declaring a larger `Content-Length` get 413 before the handler runs. */
  bodyLimitBytes: number;
  /** Each caller's requests in flight: one over the cap gets 429 before the handler runs. */
  streams: CallerStreamLimit;
  draining: () => boolean;
  /** Passed to the handler: aborts when the server shuts down. */
  shutdown: AbortSignal;
  /** Passed to the handler: aborts when the shutdown grace period is over. */
  hardStop: AbortSignal;
  log: LogFn;
}

const notFound = (res: NodeResponse) =>
  sendError(res, 404, { message: "not found", type: "invalid_request_error", code: "not_found" });

const internalError = (res: NodeResponse) => {
  if (res.headersSent) res.destroy();
  else
    sendError(res, 500, {
      message: "internal error",
      type: "server_error",
      code: "internal_error",
    });
};

/**
 * Serves what the Connect router does not: authenticates the caller and hands the request to
 * the `http` handler. Under `/v1/` (the OpenAI-compatible API) a missing or unknown key gets 401
 * with an OpenAI-style body and `WWW-Authenticate: Bearer`; elsewhere an unauthenticated request
 * is not routable and gets 404, like any path nobody handles. While draining, every request
 * gets 503. A caller with its cap of requests in flight gets 429 with `Retry-After` (the request
 * is released when its response closes, by whoever tracks responses). The returned function never rejects: a handler (or `authenticate`) that throws
 * yields a 500 "internal error", or a reset stream once the response has started; the error's
 * message is neither sent nor logged.
 */
export function createHttpRoutes(
  options: HttpRoutesOptions,
): (req: NodeRequest, res: NodeResponse) => Promise<void> {
  const { http, authenticate, bodyLimitBytes, streams, draining, shutdown, hardStop, log } =
    options;
  // The caller each connection last authenticated as, with the exact Authorization header that
  // did it. A keep-alive client sends the same header on every request; checking it again cost
  // each request a SHA-256 (issue #6). Only a header the same connection sent before is compared
  // with, and only a successful one is kept, so the comparison tells nobody anything new.
  const authenticated = new WeakMap<object, { header: string; caller: Caller }>();
  const callerOf = (req: NodeRequest): Caller | undefined => {
    const header = req.headers.authorization;
    if (header === undefined) return undefined;
    const connection = connectionOf(req);
    const memo = authenticated.get(connection);
    if (memo !== undefined && memo.header === header) return memo.caller;
    const key = parseBearerToken(header);
    const caller = key === undefined ? undefined : authenticate(key);
    if (caller !== undefined) authenticated.set(connection, { header, caller });
    return caller;
  };

  // Everything up to the handler is synchronous; `true` when the request was answered. One async
  // function per request, the caller's (issue #6: each pass-through layer cost a promise).
  const route = (req: NodeRequest, res: NodeResponse, path: string): Promise<boolean> | boolean => {
    if (draining()) {
      sendError(res, 503, {
        message: shuttingDownMessage,
        type: "server_error",
        code: "unavailable",
      });
      return true;
    }
    const caller = callerOf(req);
    if (caller === undefined) {
      if (path !== "/v1" && !path.startsWith("/v1/")) return false;
      log("warn", "rejected a request without a valid API key", {
        path,
        reason: parseBearerToken(req.headers.authorization) === undefined ? "missing" : "unknown",
      });
      sendError(
        res,
        401,
        { message: unauthenticatedMessage, type: "invalid_request_error", code: "invalid_api_key" },
        { "www-authenticate": "Bearer" },
      );
      return true;
    }
    const request = requestOf(req);
    if (request) request.caller = caller.name;
    if (http === undefined) return false;
    // Neither refusal reads the body: sendError closes an HTTP/1 connection rather than drain it.
    if (Number(req.headers["content-length"] ?? 0) > bodyLimitBytes) {
      sendError(res, 413, {
        message: `request body larger than ${bodyLimitBytes} bytes`,
        type: "invalid_request_error",
        code: "request_too_large",
      });
      return true;
    }
    if (request !== undefined && !streams.acquire(request, caller.name)) {
      sendError(
        res,
        429,
        { message: tooManyStreamsMessage, type: "rate_limit_error", code: tooManyStreamsCode },
        { "retry-after": tooManyStreamsRetryAfter },
      );
      return true;
    }
    return http(req, res, caller, shutdown, hardStop);
  };

  return async (req, res) => {
    const path = requestPath(req);
    try {
      const handled = await route(req, res, path);
      if (!handled && !res.headersSent) notFound(res);
    } catch (e) {
      log("error", "HTTP handler failed with an unexpected error", {
        path,
        error: e instanceof Error ? e.name : typeof e,
      });
      internalError(res);
    }
  };
}

/** The connection a request came on: its socket, or its HTTP/2 session (whose streams share one). */
function connectionOf(req: NodeRequest): object {
  return "stream" in req ? (req.stream.session ?? req.socket) : req.socket;
}

/** True when `rawHeaders` (name, value, name, value…) holds `Authorization` more than once. */
function repeatsAuthorization(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 13 && name.toLowerCase() === "authorization") {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}

/** Answers a probe: 200 with `{"status":"ok"|"ready"}`, 503 with any other status. */
function serveProbe(req: NodeRequest, res: NodeResponse, status: string): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendError(
      res,
      405,
      { message: "method not allowed", type: "invalid_request_error", code: "method_not_allowed" },
      { allow: "GET, HEAD" },
    );
    return;
  }
  sendJson(res, status === "ok" || status === "ready" ? 200 : 503, { status });
}

/** The request handler `connectNodeAdapter` returns. */
type ConnectHandler = ReturnType<typeof connectNodeAdapter>;

/** Options of {@link createRequestHandler}. */
export interface RequestHandlerOptions {
  cors: CorsPolicy;
  /** The Connect adapter; its fallback serves the plain HTTP routes. */
  connect: ConnectHandler;
  /**
   * The plain HTTP routes (`createHttpRoutes`): the API under `/v1/` goes there directly, no
   * Connect procedure lives there. Without it, `/v1/` goes to the adapter's fallback too.
   */
  http?: (req: NodeRequest, res: NodeResponse) => void;
  health: HealthService;
  draining: () => boolean;
  /**
   * Unauthenticated plain HTTP routes (metrics, the playground page), tried after the probes
   * and before Connect; return true when the request was answered. Never asked for Connect
   * procedure paths or paths under `/v1/`.
   */
  publicHttp?: PublicHttpHandler;
  log: LogFn;
}

/** A handler for unauthenticated paths; true when it answered the request. */
export type PublicHttpHandler = (req: NodeRequest, res: NodeResponse) => boolean | Promise<boolean>;

/**
 * The entry point of every request, on every protocol: CORS first (a preflight is answered
 * here), then the unauthenticated probes `GET /healthz` (200 while the process runs) and
 * `GET /readyz` (200 when ready, 503 when not ready or shutting down), then the public routes,
 * then the Connect adapter. Never throws: a failure becomes a 500 "internal error".
 */
export function createRequestHandler(
  options: RequestHandlerOptions,
): (req: NodeRequest, res: NodeResponse) => void {
  const { cors, connect, health, draining, publicHttp, http, log } = options;
  const fail = (e: unknown, res: NodeResponse) => {
    log("error", "request failed before routing", {
      error: e instanceof Error ? e.name : typeof e,
    });
    internalError(res);
  };
  return (req, res) => {
    try {
      if (cors.handle(req, res)) return;
      const path = requestPath(req);
      if (path === "/healthz" || path === "/readyz") {
        const readiness = health.serving() ? "ready" : draining() ? "shutting down" : "not ready";
        serveProbe(req, res, path === "/healthz" ? "ok" : readiness);
        return;
      }
      if (req.headers.authorization !== undefined && repeatsAuthorization(req.rawHeaders)) {
        // Node keeps the first of two and drops the other: which one a proxy in front checked,
        // nobody knows. Refused, as RFC 9110 §5.3 allows for a field that cannot be a list.
        sendError(res, 400, {
          message: "more than one Authorization header",
          type: "invalid_request_error",
          code: "bad_request",
        });
        return;
      }
      if (req.httpVersionMajor === 1 && req.headers.host === undefined) {
        // HTTP/1.0 without Host: Connect needs an authority to build the request URL.
        sendError(res, 400, {
          message: "missing Host header",
          type: "invalid_request_error",
          code: "bad_request",
        });
        return;
      }
      if (http !== undefined && path.startsWith("/v1/")) {
        http(req, res);
        return;
      }
      // The adapter's response type is a structural subset of both Node response types.
      const toConnect = () => connect(req, res as Parameters<ConnectHandler>[1]);
      // Public routes serve pages (/metrics, /playground), never a Connect procedure nor the
      // authenticated API under /v1/: those skip the lookup and its promises.
      if (publicHttp === undefined || path.startsWith("/v1/") || procedurePath.test(path)) {
        toConnect();
        return;
      }
      Promise.resolve(publicHttp(req, res)).then(
        (handled) => {
          if (!handled) toConnect();
        },
        (e: unknown) => fail(e, res),
      );
    } catch (e) {
      fail(e, res);
    }
  };
}
