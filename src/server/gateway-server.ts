import { setMaxListeners } from "node:events";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Server as TlsServer } from "node:tls";
import { Code, ConnectError, type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import type { KeyLimiter } from "../limits/index.js";
import {
  type GatewayMetrics,
  type LogFn,
  type RequestLogFn,
  requestLogVia,
  type Tracing,
} from "../observability/index.js";
import { explainReflectionOverHttp1, registerReflection } from "../reflection/index.js";
import { type Caller, callerKey } from "./caller.js";
import { createKeyLimitsInterceptor, nodeResponseKey } from "./caller-limits.js";
import { connectionKey, connectionOf, createCallerLookup } from "./caller-lookup.js";
import { createCallerStreamLimit, createStreamLimitInterceptor } from "./caller-streams.js";
import { createClientAddress } from "./client-address.js";
import {
  type ConnectionLimits,
  deadlineCheckIntervalMs,
  validateLimits,
} from "./connection-limits.js";
import { createConnectionTracker } from "./connection-tracker.js";
import { createCorsPolicy } from "./cors.js";
import { type Door, writeServerError } from "./doors.js";
import { createHealthService } from "./health.js";
import { type NodeRequest, type NodeResponse, responseOf } from "./http-response.js";
import { createHttp2Timeouts } from "./http2-timeouts.js";
import {
  createAuthInterceptor,
  createDrainInterceptor,
  createErrorInterceptor,
  createStreamCutoffInterceptor,
  shuttingDownMessage,
  withInterceptors,
} from "./interceptors.js";
import { createGatewayListener, displayHost, errorName, listenOn } from "./listeners.js";
import { createObserveInterceptor, observeRequests, routeLabel, traceDoors } from "./observe.js";
import { requestContextKey, requestOf } from "./request-context.js";
import { createDoorRoutes, createRequestHandler } from "./request-handler.js";

/** Options of {@link startGatewayServer}. */
export interface GatewayServerOptions {
  /** The address to listen on, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** The TCP port; 0 picks a free one (see {@link GatewayServer.port}). */
  port: number;
  /**
   * A PEM certificate (chain) and private key. When set, the server speaks TLS and negotiates
   * HTTP/2 or HTTP/1.1 by ALPN; otherwise it speaks cleartext HTTP/1.1 and h2c (prior knowledge)
   * on the same port.
   */
  tls?: { cert: string; key: string };
  /** Browser origins allowed by CORS, compared exactly, or `"*"` for any origin. */
  corsOrigins: readonly string[];
  /**
   * Registers the Connect services (ChatService, WorkflowService, ModelService). Every service
   * registered here requires an API key. The server registers `grpc.health.v1.Health` and gRPC
   * server reflection (`grpc.reflection.v1` and `v1alpha`) itself, without a key.
   */
  routes: (router: ConnectRouter) => void;
  /**
   * Checks a caller's bearer key; `undefined` for an unknown key. Comparing in constant time is
   * the callee's job.
   */
  authenticate: (key: string) => Caller | undefined;
  /**
   * Whether a caller `authenticate` returned earlier still stands; default always. A connection's
   * accepted key is remembered (`createCallerLookup`): after a config reload removed or rotated
   * keys, the callers of the old config are no longer current, and the next request on a
   * keep-alive connection is authenticated again.
   */
  callerCurrent?: (caller: Caller) => boolean;
  /**
   * The doors mounted for plain HTTP (the OpenAI-compatible API, the metrics page, the
   * playground), tried by path before Connect; see {@link Door}. For a `key` door the server
   * answers 401 itself for a missing or unknown key, 413 for a declared `Content-Length` above
   * `bodyLimitBytes` (a handler reading a body without one must enforce the limit itself), 429
   * when the caller has `limits.maxStreamsPerKey` requests in flight, and 503 while draining, in
   * the door's own words. `shutdown` aborts when `close()` begins, with the same
   * `Code.Unavailable` reason that ends Connect streams: a handler should end its open streams
   * then. Unary answers keep the grace period: `hardStop` aborts when it is over, with the
   * `Code.Unavailable` reason unary Connect calls get, and a handler should answer at once (503):
   * the connections are closed shortly after.
   */
  doors?: readonly Door[];
  /**
   * Prometheus metrics to record requests and open streams into. Every request gets an
   * `x-request-id` and one log line whether or not metrics are given.
   */
  metrics?: GatewayMetrics;
  /** The largest request message (Connect) or body (HTTP) accepted, in bytes. */
  bodyLimitBytes: number;
  /** How long `close()` lets unary calls in flight finish, in milliseconds. */
  shutdownGraceMs: number;
  /** Connection timeouts and stream caps. */
  limits: ConnectionLimits;
  /**
   * Each key's limits and quota, checked after authentication on every door and procedure
   * (REST: 429 with `Retry-After` and `x-ratelimit-*` headers; Connect: `RESOURCE_EXHAUSTED` with
   * the same as metadata); told what each request used when its response closes. Default none.
   */
  limiter?: KeyLimiter;
  /** Readiness for `/readyz` and the health service; default always ready. */
  ready?: () => boolean;
  /** What `/readyz` says besides its status (the state store's health). Default nothing. */
  readyDetails?: () => Readonly<Record<string, string>>;
  /** How often an open health Watch re-checks `ready`, in milliseconds. Default 1000. */
  readyPollIntervalMs?: number;
  /** Receives the server's log lines. Fields never hold a key or request body. */
  log?: LogFn;
  /** Writes each request's line; default through `log`. */
  requestLog?: RequestLogFn;
  /**
   * Reads each request's W3C `traceparent` for its log line and its Coze calls, and records
   * spans when it is on (`createTracing`). Default none: `traceparent` is ignored.
   */
  tracing?: Tracing;
  /**
   * Proxies whose `X-Forwarded-For` names the client in log lines, as `address/prefix` blocks
   * (`server.trusted_proxies`); see `createClientAddress`. Default none: the peer is the client.
   */
  trustedProxies?: readonly string[];
}

/** A running gateway server. */
export interface GatewayServer {
  /** `http(s)://HOST:PORT` with the bound port; a wildcard host is shown as 127.0.0.1. */
  readonly url: string;
  /** The bound TCP port. */
  readonly port: number;
  /**
   * Shuts down gracefully: stops accepting connections; health turns NOT_SERVING; new calls get
   * `Code.Unavailable` (HTTP 503); open server streams end at once with `Code.Unavailable`;
   * unary calls get up to `shutdownGraceMs` to finish, after which their `ctx.signal` aborts and
   * every connection is closed. Resolves when every connection is closed. Idempotent.
   */
  close(): Promise<void>;
  /**
   * Serves new TLS connections with this certificate and key (a config reload with renewed
   * files); connections already open keep theirs.
   *
   * @throws TypeError when the server was started without TLS, or the PEM text is not usable.
   */
  setTls(tls: { cert: string; key: string }): void;
}

/** After the grace period, how long aborted handlers get to write their error. */
const hardStopMarginMs = 100;

/**
 * Starts the gateway's one listening port: Connect, gRPC and gRPC-Web for the services `routes`
 * registers (every call needs `Authorization: Bearer <key>`), `grpc.health.v1.Health` and gRPC
 * server reflection (no key), `/healthz`, `/readyz`, CORS, and the `http` routes, within
 * `limits`. Resolves once listening; rejects when the address cannot be bound or an option is
 * invalid.
 */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  validateOptions(options);
  const log: LogFn = options.log ?? (() => {});
  let draining = false;
  const isDraining = () => draining;
  const streamCutoff = new AbortController();
  const hardStop = new AbortController();
  // Every open call listens to both signals; Node would warn of a leak past 10 listeners.
  setMaxListeners(0, streamCutoff.signal, hardStop.signal);
  const streams = createCallerStreamLimit(options.limits.maxStreamsPerKey);
  const h2Timeouts = createHttp2Timeouts({
    idleTimeoutMs: options.limits.idleTimeoutMs,
    requestTimeoutMs: options.limits.requestTimeoutMs,
    checkIntervalMs: deadlineCheckIntervalMs(options.limits),
  });
  const { limiter } = options;
  const tracker = createConnectionTracker({
    requestDone(req, res) {
      const request = requestOf(req);
      streams.release(request);
      const used = request?.usage;
      limiter?.finish(
        request,
        request?.caller,
        used === undefined ? 0 : used.promptTokens + used.completionTokens,
      );
      if (req.httpVersionMajor === 2) {
        h2Timeouts.requestDone(req as Http2ServerRequest, res as Http2ServerResponse);
      }
    },
  });
  const health = createHealthService({
    ready: options.ready ?? (() => true),
    pollIntervalMs: options.readyPollIntervalMs ?? 1000,
    details: options.readyDetails,
  });

  const errors = createErrorInterceptor(log);
  // One authentication for every door and every procedure, remembered per connection.
  const lookup = createCallerLookup(options.authenticate, options.callerCurrent);
  const observer = {
    metrics: options.metrics,
    requestLog: options.requestLog ?? requestLogVia(log),
    tracing: options.tracing,
  };
  const observe = createObserveInterceptor(observer);
  const drain = createDrainInterceptor(isDraining);
  const cutoff = createStreamCutoffInterceptor(streamCutoff.signal);
  const serviceInterceptors = [
    // Outermost, so it sees the code the caller gets.
    observe,
    errors,
    drain,
    createAuthInterceptor(options.authenticate, log, callerKey, lookup),
    createStreamLimitInterceptor(streams),
    ...(limiter ? [createKeyLimitsInterceptor(limiter)] : []),
    cutoff,
  ];
  const doors = traceDoors(options.doors ?? [], options.tracing);
  // The served procedures' paths, for the labels of calls Connect refuses before a service runs.
  const procedures = new Set<string>();
  const routeDoor = createDoorRoutes({
    lookup,
    bodyLimitBytes: options.bodyLimitBytes,
    streams,
    limiter,
    draining: isDraining,
    shutdown: streamCutoff.signal,
    hardStop: hardStop.signal,
    log,
  });
  const connect = connectNodeAdapter({
    readMaxBytes: options.bodyLimitBytes,
    // Every call's handler context carries its request's context (observe.ts made it).
    contextValues: (req) =>
      createContextValues()
        .set(requestContextKey, requestOf(req))
        .set(connectionKey, connectionOf(req as NodeRequest))
        .set(nodeResponseKey, responseOf(req as NodeRequest)),
    // Aborted only when the grace period is over: aborting it earlier would cancel unary
    // calls that are allowed to finish. Streams are ended by the cutoff interceptor instead.
    shutdownSignal: hardStop.signal,
    routes(router) {
      options.routes(withInterceptors(router, serviceInterceptors));
      // Health needs no key, and ends its Watch streams itself after sending NOT_SERVING.
      router.service(Health, health.impl, { interceptors: [observe, errors] });
      // Reflection needs no key either: it hands out the contract's descriptors and calls
      // nothing. It describes what is registered above, so it comes last.
      registerReflection(router, { interceptors: [observe, errors, drain, cutoff] });
      health.setServices(router.handlers.map((h) => h.service.typeName));
      for (const h of router.handlers) procedures.add(h.requestPath);
    },
    fallback(_req, res) {
      // No door and no procedure owns the path.
      writeServerError(res as NodeResponse, {
        status: 404,
        code: "not_found",
        message: "not found",
      });
    },
  });
  const handler = observeRequests(
    {
      ...observer,
      label: (method, path) =>
        procedures.has(path) ? path.slice(1) : routeLabel(doors, method, path),
      clientAddress: createClientAddress(options.trustedProxies ?? []),
    },
    createRequestHandler({
      cors: createCorsPolicy({ origins: options.corsOrigins }),
      connect: explainReflectionOverHttp1(connect),
      doors,
      routeDoor: (req, res, door, path) => void routeDoor(req, res, door, path),
      health,
      draining: isDraining,
      log,
    }),
  );
  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    if (req.httpVersionMajor === 2) {
      h2Timeouts.requestStarted(req as Http2ServerRequest, res as Http2ServerResponse);
    }
    handler(req, res, tracker.trackRequest(req, res));
  };
  const { server: listener, dispose } = createGatewayListener({
    tls: options.tls,
    limits: options.limits,
    onRequest,
    track: tracker.track,
    onSession(session) {
      tracker.trackSession(session);
      h2Timeouts.session(session);
    },
  });

  let port: number;
  try {
    port = await listenOn(listener, options.host, options.port);
  } catch (e) {
    dispose();
    h2Timeouts.close();
    throw e;
  }
  listener.on("error", (e) => log("error", "listener failed", { error: errorName(e) }));
  const scheme = options.tls ? "https" : "http";
  const url = `${scheme}://${displayHost(options.host)}:${port}`;
  log("info", "listening", { url, tls: options.tls !== undefined });

  const shutdown = async () => {
    log("info", "shutting down", {
      activeRequests: tracker.activeRequests,
      graceMs: options.shutdownGraceMs,
    });
    draining = true;
    health.shutdown();
    streamCutoff.abort(new ConnectError(shuttingDownMessage, Code.Unavailable));
    const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
    tracker.drain();
    const grace = delay(options.shutdownGraceMs);
    try {
      const drained = await Promise.race([
        tracker.idle().then(() => true),
        grace.promise.then(() => false),
      ]);
      if (drained) {
        // Connections close themselves now (HTTP/1 ended, HTTP/2 after GOAWAY); force laggards.
        const closed = await Promise.race([
          listenerClosed.then(() => true),
          grace.promise.then(() => false),
        ]);
        if (!closed) tracker.destroyAll();
      } else {
        log("warn", "grace period over with calls in flight", {
          activeRequests: tracker.activeRequests,
        });
        hardStop.abort(
          new ConnectError("server shut down before the call completed", Code.Unavailable),
        );
        const margin = delay(hardStopMarginMs);
        await Promise.race([tracker.idle(), margin.promise]);
        margin.cancel();
        tracker.destroyAll();
      }
      await listenerClosed;
    } finally {
      grace.cancel();
      dispose();
      h2Timeouts.close();
    }
    log("info", "closed");
  };

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= shutdown();
      return closing;
    },
    setTls(tls) {
      if (!options.tls) throw new TypeError("the server speaks cleartext: TLS needs a restart");
      (listener as TlsServer).setSecureContext({ cert: tls.cert, key: tls.key });
    },
  };
}

function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

function validateOptions(options: GatewayServerOptions): void {
  const { port, bodyLimitBytes, shutdownGraceMs, readyPollIntervalMs } = options;
  validateLimits(options.limits);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`server port must be an integer from 0 to 65535, got ${port}`);
  }
  if (!Number.isInteger(bodyLimitBytes) || bodyLimitBytes <= 0) {
    throw new RangeError(`server bodyLimitBytes must be a positive integer, got ${bodyLimitBytes}`);
  }
  if (!Number.isFinite(shutdownGraceMs) || shutdownGraceMs < 0) {
    throw new RangeError(`server shutdownGraceMs must be 0 or more, got ${shutdownGraceMs}`);
  }
  if (readyPollIntervalMs !== undefined && !(readyPollIntervalMs > 0)) {
    throw new RangeError(`server readyPollIntervalMs must be positive, got ${readyPollIntervalMs}`);
  }
}
