import { cors as connectCors } from "@connectrpc/connect";
import { writeServerError } from "./doors.js";
import { addHeader } from "./gateway-response.js";
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
   * for an allowed origin, 403 (without CORS headers) for any other, 400 (without CORS headers)
   * when the preflight asks for a header name that is not an HTTP token. Returns `true` when
   * the request has been answered, `false` when it should be routed as usual.
   */
  handle(req: NodeRequest, res: NodeResponse): boolean;
}

/**
 * The response headers a browser script may read. `Access-Control-Expose-Headers` takes no
 * prefix wildcard (and `*` does not cover credentialed requests), so every name is listed:
 * gRPC-Web's status and Connect's encodings; the request id; the Coze and gateway facts of an
 * answer or error (log id, code, step, conversation, workflow run, channel); `Retry-After` and
 * OpenAI's rate-limit headers, which the openai SDK reads for its retries and a browser app
 * shows as remaining quota.
 */
export const exposedHeaders: readonly string[] = [
  ...connectCors.exposedHeaders,
  "X-Request-Id",
  "X-Coze-Logid",
  "X-Coze-Code",
  "X-Coze-Step",
  "X-Coze-Conversation-Id",
  "X-Coze-Execute-Id",
  "X-Gateway-Error",
  "X-Gateway-Channel",
  "Retry-After",
  "X-Ratelimit-Limit-Requests",
  "X-Ratelimit-Limit-Tokens",
  "X-Ratelimit-Remaining-Requests",
  "X-Ratelimit-Remaining-Tokens",
  "X-Ratelimit-Reset-Requests",
  "X-Ratelimit-Reset-Tokens",
];

const allowedMethods = connectCors.allowedMethods.join(", ");
const exposed = exposedHeaders.join(", ");
/** An HTTP field name: RFC 9110's `token`. */
const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a preflight answer depends on besides the path (a plain answer depends on `Origin`). */
const preflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/**
 * Creates the CORS policy for Connect-Web and browser OpenAI clients. Origins are compared
 * exactly; an allowed origin is echoed back (never `*`), with `Vary: Origin` so caches keep
 * answers for different origins apart. A preflight from an allowed origin is granted every
 * request header it names, since clients add their own (the openai SDK sends `x-stainless-*`,
 * Connect its protocol headers) and a fixed list breaks the next one; the API key still
 * decides what the call may do. Requests without an `Origin` header are not affected.
 */
export function createCorsPolicy(options: CorsPolicyOptions): CorsPolicy {
  const anyOrigin = options.origins.includes("*");
  const origins = new Set(options.origins);
  const maxAge = String(options.maxAgeSeconds ?? 7200);
  const allowed = (origin: string) => anyOrigin || origins.has(origin);

  return {
    handle(req, res) {
      const origin = req.headers.origin;
      const requested = req.headers["access-control-request-headers"];
      const preflight =
        req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
      addHeader(res, "vary", req.method === "OPTIONS" ? preflightVary : "Origin");
      if (typeof origin !== "string") return false;
      if (!allowed(origin)) {
        if (!preflight) return false;
        writeServerError(res, { status: 403, code: "forbidden", message: "origin not allowed" });
        return true;
      }
      if (!preflight) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-expose-headers", exposed);
        return false;
      }
      const names = headerNames(requested);
      if (typeof names === "string") {
        writeServerError(res, {
          status: 400,
          code: "bad_request",
          message: `access-control-request-headers: ${names} is not a header name`,
        });
        return true;
      }
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-allow-methods", allowedMethods);
      if (names.length > 0) res.setHeader("access-control-allow-headers", names.join(", "));
      res.setHeader("access-control-max-age", maxAge);
      res.statusCode = 204;
      res.end();
      return true;
    },
  };
}

/**
 * The header names of `Access-Control-Request-Headers`, lower-cased and each once, or the first
 * item that is not a header name, quoted and cut short, for the error message. Empty items are
 * skipped, as RFC 9110's list syntax asks. The list is as long as the request's headers allow
 * (Node caps them), so no limit of its own is needed.
 */
function headerNames(value: string | undefined): string[] | string {
  if (value === undefined) return [];
  const names = new Set<string>();
  for (const item of value.split(",")) {
    const name = item.trim();
    if (name === "") continue;
    if (!token.test(name)) return JSON.stringify(name.slice(0, 64));
    names.add(name.toLowerCase());
  }
  return [...names];
}
