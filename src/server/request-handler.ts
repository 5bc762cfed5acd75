import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { KeyLimiter, Verdict } from "../limits/index.js";
import type { LogFn } from "../observability/index.js";
import { parseBearerToken } from "./bearer.js";
import { limitRefusal } from "./caller-limits.js";
import { type CallerLookup, connectionOf } from "./caller-lookup.js";
import {
  type CallerStreamLimit,
  tooManyStreamsMessage,
  tooManyStreamsRetryAfter,
} from "./caller-streams.js";
import type { CorsPolicy } from "./cors.js";
import { type Door, doorFor, errorWriterOf, writeServerError } from "./doors.js";
import { addHeaders } from "./gateway-response.js";
import type { HealthService } from "./health.js";
import {
  type NodeRequest,
  type NodeResponse,
  requestPath,
  sendJson,
  tieResponse,
} from "./http-response.js";
import { shuttingDownMessage, unauthenticatedMessage } from "./interceptors.js";
import { noteFailure, requestOf } from "./request-context.js";

/** Options of {@link createDoorRoutes}. */
export interface DoorRoutesOptions {
  /** The server's one way to tell the caller of a request (`createCallerLookup`). */
  lookup: CallerLookup;
  /** Requests to a `key` door declaring a larger `Content-Length` get 413 before the handler. */
  bodyLimitBytes: number;
  /** Each caller's requests in flight: one over the cap gets 429 before the handler runs. */
  streams: CallerStreamLimit;
  /** Each key's limits and quota: a refused request gets 429 (or 503) before the handler runs. */
  limiter?: KeyLimiter;
  draining: () => boolean;
  /** Passed to the handlers: aborts when the server shuts down. */
  shutdown: AbortSignal;
  /** Passed to the handlers: aborts when the shutdown grace period is over. */
  hardStop: AbortSignal;
  log: LogFn;
}

/**
 * Serves a request to one of the mounted doors. For a `key` door: while draining, 503; a missing
 * or unknown key, 401 with `WWW-Authenticate: Bearer`; a declared body over the limit, 413; a
 * caller with its cap of requests in flight, 429 with `Retry-After` (the request is released when
 * its response closes, by whoever tracks responses); a key over its limits or quota, 429 with
 * `Retry-After` and its `x-ratelimit-*` figures (which every response of a limited key carries);
 * then the handler. Every refusal is worded by
 * the door ({@link Door.writeError}). The returned function never rejects: a handler that throws
 * yields a 500 "internal error", or a reset stream once the response has started; the error's
 * message is neither sent nor logged.
 */
export function createDoorRoutes(
  options: DoorRoutesOptions,
): (req: NodeRequest, res: NodeResponse, door: Door, path: string) => Promise<void> {
  const { lookup, bodyLimitBytes, streams, limiter, draining, shutdown, hardStop, log } = options;
  const callerOf = (req: NodeRequest) => lookup(connectionOf(req), req.headers.authorization);

  // Everything up to the handler is synchronous; `true` when the request was answered. One async
  // function per request, the caller's (issue #6: each pass-through layer cost a promise).
  const route = (
    req: NodeRequest,
    res: NodeResponse,
    door: Door,
    path: string,
  ): Promise<boolean> | boolean => {
    if (door.auth === "public")
      return door.handle(req, res, { caller: undefined, shutdown, hardStop });
    const refuse = errorWriterOf(door);
    if (draining()) {
      refuse(res, { status: 503, code: "unavailable", message: shuttingDownMessage });
      return true;
    }
    const caller = callerOf(req);
    if (caller === undefined) {
      const reason =
        parseBearerToken(req.headers.authorization) === undefined ? "missing" : "unknown";
      noteFailure(requestOf(req), `${reason}_key`);
      log("warn", "rejected a request without a valid API key", { path, reason });
      refuse(res, {
        status: 401,
        code: "unauthenticated",
        message: unauthenticatedMessage,
        headers: { "www-authenticate": "Bearer" },
      });
      return true;
    }
    const request = requestOf(req);
    if (request) request.caller = caller.name;
    // Neither refusal reads the body: sendJson closes an HTTP/1 connection rather than drain it.
    if (Number(req.headers["content-length"] ?? 0) > bodyLimitBytes) {
      refuse(res, {
        status: 413,
        code: "too_large",
        message: `request body larger than ${bodyLimitBytes} bytes`,
      });
      return true;
    }
    if (request !== undefined && !streams.acquire(request, caller.name)) {
      refuse(res, {
        status: 429,
        code: "too_many_streams",
        message: tooManyStreamsMessage,
        headers: { "retry-after": tooManyStreamsRetryAfter },
      });
      return true;
    }
    const metered = door.metered?.(req.method ?? "GET", path) ?? true;
    const verdict = request && limiter?.admit(request, caller.name, metered);
    if (verdict === undefined) return door.handle(req, res, { caller, shutdown, hardStop });
    const proceed = (v: Verdict) => {
      if (!v.ok) {
        refuse(res, limitRefusal(v.error));
        return true;
      }
      addHeaders(res, v.headers);
      return door.handle(req, res, { caller, shutdown, hardStop });
    };
    return verdict instanceof Promise ? verdict.then(proceed) : proceed(verdict);
  };

  return async (req, res, door, path) => {
    try {
      const handled = await route(req, res, door, path);
      if (!handled && !res.headersSent) {
        errorWriterOf(door)(res, { status: 404, code: "not_found", message: "not found" });
      }
    } catch (e) {
      log("error", "HTTP handler failed with an unexpected error", {
        path,
        error: e instanceof Error ? e.name : typeof e,
      });
      internalError(res, door);
    }
  };
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

/**
 * Answers a probe: 200 with `{"status":"ok"|"ready"}`, 503 with any other status, plus
 * `details` (`/readyz`: the shared state store's).
 */
function serveProbe(
  req: NodeRequest,
  res: NodeResponse,
  status: string,
  details?: Readonly<Record<string, string>>,
): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    writeServerError(res, {
      status: 405,
      code: "method_not_allowed",
      message: "method not allowed",
      headers: { allow: "GET, HEAD" },
    });
    return;
  }
  sendJson(res, status === "ok" || status === "ready" ? 200 : 503, { status, ...details });
}

/** The request handler `connectNodeAdapter` returns. */
type ConnectHandler = ReturnType<typeof connectNodeAdapter>;

/** Options of {@link createRequestHandler}. */
export interface RequestHandlerOptions {
  cors: CorsPolicy;
  /** The Connect adapter: every path that no door owns. */
  connect: ConnectHandler;
  /** The mounted doors, tried by path before Connect; see {@link doorFor}. */
  doors: readonly Door[];
  /** Serves a request to a door (`createDoorRoutes`). */
  routeDoor: (req: NodeRequest, res: NodeResponse, door: Door, path: string) => void;
  health: HealthService;
  draining: () => boolean;
  log: LogFn;
}

/**
 * The entry point of every request, on every protocol: CORS first (a preflight is answered
 * here), then the unauthenticated probes `GET /healthz` (200 while the process runs) and
 * `GET /readyz` (200 when ready, 503 when not ready or shutting down), then the door that owns
 * the path, else the Connect adapter. Never throws: a failure becomes a 500 "internal error".
 */
export function createRequestHandler(
  options: RequestHandlerOptions,
): (req: NodeRequest, res: NodeResponse) => void {
  const { cors, connect, doors, routeDoor, health, draining, log } = options;
  return (req, res) => {
    let door: Door | undefined;
    try {
      if (cors.handle(req, res)) return;
      const path = requestPath(req);
      if (path === "/healthz" || path === "/readyz") {
        const readiness = health.serving() ? "ready" : draining() ? "shutting down" : "not ready";
        if (path === "/healthz") serveProbe(req, res, "ok");
        else serveProbe(req, res, readiness, health.details());
        return;
      }
      door = doorFor(doors, path);
      if (req.headers.authorization !== undefined && repeatsAuthorization(req.rawHeaders)) {
        // Node keeps the first of two and drops the other: which one a proxy in front checked,
        // nobody knows. Refused, as RFC 9110 §5.3 allows for a field that cannot be a list.
        errorWriterOf(door)(res, {
          status: 400,
          code: "bad_request",
          message: "more than one Authorization header",
        });
        return;
      }
      if (req.httpVersionMajor === 1 && req.headers.host === undefined) {
        // HTTP/1.0 without Host: Connect needs an authority to build the request URL.
        errorWriterOf(door)(res, {
          status: 400,
          code: "bad_request",
          message: "missing Host header",
        });
        return;
      }
      if (door !== undefined) {
        routeDoor(req, res, door, path);
        return;
      }
      tieResponse(req, res);
      // The adapter's response type is a structural subset of both Node response types.
      connect(req, res as Parameters<ConnectHandler>[1]);
    } catch (e) {
      log("error", "request failed before routing", {
        error: e instanceof Error ? e.name : typeof e,
      });
      internalError(res, door);
    }
  };
}

/** A 500 in the door's words, or a reset stream once the response has started. */
function internalError(res: NodeResponse, door: Door | undefined): void {
  if (res.headersSent) res.destroy();
  else errorWriterOf(door)(res, { status: 500, code: "internal", message: "internal error" });
}
