import { hash, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { LogFn } from "../observability/index.js";
import { parseBearerToken } from "./bearer.js";
import { type ConnectionLimits, deadlineCheckIntervalMs } from "./connection-limits.js";
import { type PublicHttpHandler, writeServerError } from "./doors.js";
import { requestPath } from "./http-response.js";
import { unauthenticatedMessage } from "./interceptors.js";
import { displayHost, errorName, listenOn } from "./listeners.js";

/** The path Prometheus scrapes. */
const metricsPath = "/metrics";

/**
 * Puts `route`'s `/metrics` behind a key: a request for it must send
 * `Authorization: Bearer <key>` whose SHA-256 is `keySha256` (compared in constant time), or
 * gets 401 with `WWW-Authenticate: Bearer`. Every other path goes to `route` unchanged.
 */
export function requireMetricsKey(route: PublicHttpHandler, keySha256: Buffer): PublicHttpHandler {
  return (req, res) => {
    if (requestPath(req) !== metricsPath) return route(req, res);
    const key = parseBearerToken(req.headers.authorization);
    const given = key === undefined ? undefined : hash("sha256", key, "buffer");
    if (given === undefined || !timingSafeEqual(given, keySha256)) {
      writeServerError(res, {
        status: 401,
        code: "unauthenticated",
        message: unauthenticatedMessage,
        headers: { "www-authenticate": "Bearer" },
      });
      return true;
    }
    return route(req, res);
  };
}

/** Options of {@link startMetricsListener}. */
export interface MetricsListenerOptions {
  /** The address to listen on, e.g. `127.0.0.1`. */
  host: string;
  /** The TCP port; 0 picks a free one. */
  port: number;
  /** Serves `/metrics` (and answers false for anything else). */
  route: PublicHttpHandler;
  /** The idle, headers and request timeouts apply here as on the main port. */
  limits: ConnectionLimits;
  log: LogFn;
}

/** A running metrics listener. */
export interface MetricsListener {
  /** `http://HOST:PORT` with the bound port. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes every connection at once (a scrape is cheap to repeat). */
  close(): Promise<void>;
}

/**
 * Serves `route` (the metrics) on an address of its own: plain HTTP/1.1, every other path 404,
 * so the metrics can stay on a private interface while the API is public. Requests are neither
 * logged nor counted. Resolves once listening.
 *
 * @throws Error `cannot listen on HOST:PORT (CODE)` when the address cannot be bound.
 */
export async function startMetricsListener(
  options: MetricsListenerOptions,
): Promise<MetricsListener> {
  const { route, limits, log } = options;
  const server = createServer(
    {
      maxHeaderSize: 16 * 1024,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      connectionsCheckingInterval: deadlineCheckIntervalMs(limits),
    },
    (req, res) => {
      const notFound = () =>
        writeServerError(res, { status: 404, code: "not_found", message: "not found" });
      Promise.resolve()
        .then(() => route(req, res))
        .then(
          (handled) => {
            if (!handled) notFound();
          },
          (e: unknown) => {
            log("error", "metrics request failed", { error: errorName(e) });
            if (res.headersSent) res.destroy();
            else
              writeServerError(res, { status: 500, code: "internal", message: "internal error" });
          },
        );
    },
  );
  const port = await listenOn(server, options.host, options.port);
  server.on("error", (e) => log("error", "metrics listener failed", { error: errorName(e) }));
  const url = `http://${displayHost(options.host)}:${port}`;
  log("info", "metrics listening", { url });
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
