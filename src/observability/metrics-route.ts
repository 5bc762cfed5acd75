import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { GatewayMetrics } from "./metrics.js";

/** A handler of plain HTTP that needs no key; `true` when it answered the request. */
export type MetricsRoute = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => Promise<boolean>;

/**
 * Serves `GET` and `HEAD /metrics` (query ignored) as Prometheus text, uncached; other methods on
 * that path get 405. Answers nothing else.
 */
export function createMetricsRoute(
  metrics: Pick<GatewayMetrics, "render" | "contentType">,
): MetricsRoute {
  return async (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return true;
    }
    const body = await metrics.render();
    res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  };
}
