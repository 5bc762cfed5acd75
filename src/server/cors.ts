import { cors as connectCors } from "@connectrpc/connect";
import { writeServerError } from "./doors.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";

/** Options of {@link createCorsPolicy}. */
export interface CorsPolicyOptions {
  /** Exact origins (`https://app.example.com`) allowed to call from a browser, or `"*"` for any. */
  origins: readonly string[];
  /** How long browsers may cache a preflight answer, in seconds. Default 7200 (Chrome's cap). */
  maxAgeSeconds?: number;
}

/** Applies the CORS rules of the server to one request. */
export interface CorsPolicy {
  /**
   * Adds the CORS response headers for an allowed origin and answers preflight requests: 204
   * for an allowed origin, 403 (without CORS headers) for any other. Returns `true` when the
   * request has been answered, `false` when it should be routed as usual.
   */
  handle(req: NodeRequest, res: NodeResponse): boolean;
}

/** Headers a browser script may send: Connect's, gRPC-Web's, and the caller's API key. */
const allowedHeaders = [...connectCors.allowedHeaders, "Authorization"].join(", ");
const allowedMethods = connectCors.allowedMethods.join(", ");
const exposedHeaders = connectCors.exposedHeaders.join(", ");

/**
 * Creates the CORS policy for Connect-Web and browser OpenAI clients. Origins are compared
 * exactly; an allowed origin is echoed back (never `*`), with `Vary: Origin` so caches keep
 * answers for different origins apart. Requests without an `Origin` header are not affected.
 */
export function createCorsPolicy(options: CorsPolicyOptions): CorsPolicy {
  const anyOrigin = options.origins.includes("*");
  const origins = new Set(options.origins);
  const maxAge = String(options.maxAgeSeconds ?? 7200);
  const allowed = (origin: string) => anyOrigin || origins.has(origin);

  return {
    handle(req, res) {
      res.setHeader("vary", "Origin");
      const origin = req.headers.origin;
      if (typeof origin !== "string") return false;
      const preflight =
        req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
      if (!allowed(origin)) {
        if (!preflight) return false;
        writeServerError(res, { status: 403, code: "forbidden", message: "origin not allowed" });
        return true;
      }
      res.setHeader("access-control-allow-origin", origin);
      if (!preflight) {
        res.setHeader("access-control-expose-headers", exposedHeaders);
        return false;
      }
      res.setHeader("access-control-allow-methods", allowedMethods);
      res.setHeader("access-control-allow-headers", allowedHeaders);
      res.setHeader("access-control-max-age", maxAge);
      res.statusCode = 204;
      res.end();
      return true;
    },
  };
}
