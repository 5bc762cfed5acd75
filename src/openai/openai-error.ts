import { Code, ConnectError } from "@connectrpc/connect";
import { errorHeaders } from "../service/index.js";

/** OpenAI's error classes as this shim uses them (the `type` of an error body). */
export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "rate_limit_error"
  | "server_error";

/** The object under `error` in an OpenAI error body. */
export interface OpenAiErrorObject {
  /** Short, safe and ours: it reaches the client verbatim. */
  message: string;
  type: OpenAiErrorType;
  /** A stable machine-readable code, e.g. `model_not_found`; `null` when none applies. */
  code: string | null;
  /** The request field at fault, named as OpenAI does (`messages[2].content`); else `null`. */
  param: string | null;
}

/**
 * An error the shim answers with `status` and an OpenAI error body
 * (`{"error":{"message","type","code","param"}}`), plus `headers` (`Retry-After`,
 * `X-Coze-Logid`). Thrown by request validation; {@link toOpenAiError} makes one from anything.
 */
export class OpenAiError extends Error {
  override readonly name = "OpenAiError";
  readonly status: number;
  readonly body: OpenAiErrorObject;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: OpenAiErrorObject, headers: Record<string, string> = {}) {
    super(body.message);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** A 400 for a bad request field (issue #4: "400 naming the field"). */
export function badRequest(param: string | null, message: string, code: string): OpenAiError {
  return new OpenAiError(400, { message, type: "invalid_request_error", code, param });
}

/** Gateway error codes that mean an upstream step failed (issue #4 decision 5: 502). */
const upstreamCodes = new Set(["failed", "protocol", "authentication"]);

/** What the shim knows when it maps a service error. */
export interface ErrorContext {
  /** Whether the request's model names a route (a NotFound then is not about the model). */
  modelKnown: boolean;
}

/**
 * Maps what a service call threw to the OpenAI error a REST client gets (issue #4 decision 5):
 * InvalidArgument → 400 (`param` = the field before the colon of a gateway validation message),
 * PermissionDenied → 403, NotFound → 404 (`model_not_found` for an unknown model),
 * ResourceExhausted → 429 with `Retry-After` when known, Unavailable → 503, DeadlineExceeded →
 * 504, Unknown/Internal from an upstream step → 502, anything else → 500 "internal error".
 * `x-coze-logid` comes back as the `X-Coze-Logid` header. Messages are the service's safe
 * messages; the text of an error that is not a `ConnectError` is never used.
 */
export function toOpenAiError(err: unknown, context: ErrorContext): OpenAiError {
  if (err instanceof OpenAiError) return err;
  if (!(err instanceof ConnectError)) {
    return new OpenAiError(500, {
      message: "internal error",
      type: "server_error",
      code: "internal_error",
      param: null,
    });
  }
  const gatewayCode = err.metadata.get(errorHeaders.code);
  const headers: Record<string, string> = {};
  const logId = err.metadata.get(errorHeaders.logId);
  if (logId) headers["x-coze-logid"] = logId;
  const message = err.rawMessage;
  const make = (status: number, type: OpenAiErrorType, code: string, param: string | null = null) =>
    new OpenAiError(status, { message, type, code, param }, headers);
  switch (err.code) {
    case Code.InvalidArgument:
      return make(
        400,
        "invalid_request_error",
        gatewayCode === "invalid_argument" ? "invalid_value" : "upstream_bad_request",
        gatewayCode === "invalid_argument" ? paramOf(message) : null,
      );
    case Code.Unauthenticated:
      return make(401, "invalid_request_error", "invalid_api_key");
    case Code.PermissionDenied:
      return make(403, "permission_error", "permission_denied");
    case Code.NotFound:
      return make(
        404,
        "invalid_request_error",
        context.modelKnown ? "not_found" : "model_not_found",
        context.modelKnown ? null : "model",
      );
    case Code.ResourceExhausted: {
      const retryAfter = err.metadata.get(errorHeaders.retryAfter);
      if (retryAfter) headers["retry-after"] = retryAfter;
      return make(429, "rate_limit_error", "rate_limit_exceeded");
    }
    case Code.Unavailable:
      return make(503, "server_error", "unavailable");
    case Code.DeadlineExceeded:
      return make(504, "server_error", "timeout");
    case Code.Canceled:
      // Reached only while the client still waits: the chat was canceled by someone else
      // (CancelChat). A client that went away gets no answer at all.
      return make(409, "invalid_request_error", "canceled");
    case Code.Unknown:
    case Code.Internal:
      if (gatewayCode !== null && upstreamCodes.has(gatewayCode)) {
        return make(502, "server_error", "upstream_error");
      }
      break;
    default:
      break;
  }
  return new OpenAiError(
    500,
    { message: "internal error", type: "server_error", code: "internal_error", param: null },
    headers,
  );
}

/** The field a gateway validation message names: `messages[1].role: …` → `messages[1].role`. */
function paramOf(message: string): string | null {
  const colon = message.indexOf(": ");
  if (colon <= 0) return null;
  const field = message.slice(0, colon);
  return /^[A-Za-z_][\w.[\]]*$/.test(field) ? field : null;
}

/** The JSON text of an error body: `{"error":{…}}`. */
export function errorJson(err: OpenAiError): string {
  return JSON.stringify({ error: err.body });
}
